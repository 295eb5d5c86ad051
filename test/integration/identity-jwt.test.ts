import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK, SignJWT, UnsecuredJWT } from 'jose';
import { parseConfig } from '../../src/config/load';
import { ConfigError, GatewayError } from '../../src/errors';
import { jwtMethod, VERIFIED_TTL_MS } from '../../src/identity/jwt';
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { clientCredentialsToken, type Issuer, startIssuer } from '../helpers/oidc';
import { agentKeyIdentity } from '../helpers/identity';

const AUDIENCE = 'https://gateway.test/';
const OTHER_AUDIENCE = 'https://other.test/';
const AGENT_KEY = 'identity-test-agent-key-0001';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

# support-bot acting for alice may read tickets.
decision := {"allow": true, "reasons": ["support-bot reads tickets for alice"]} if {
	input.agent.method == "jwt"
	input.agent.id == "support-bot"
	input.agent.on_behalf_of == "alice"
	input.request.method == "GET"
	startswith(input.request.path, "/tickets")
}

decision := {"allow": true, "reasons": ["agent key"]} if {
	input.agent.method == "api_key"
	input.agent.id == "key-bot"
	input.request.path != "/inspect"
}

decision := {"allow": true, "reasons": ["mcp"]} if input.route == "tools"

# Shows the test what the policy saw of the agent.
decision := {"allow": false, "reasons": [json.marshal(input.agent)]} if input.request.path == "/inspect"
`;

/** A refusal's JSON body. */
interface Refusal {
  readonly error: { readonly reasons: string[] };
}

let issuer: Issuer;
let upstream: Upstream;
let gw: TestGateway;
let goodToken: string;
let reportToken: string;
let otherAudienceToken: string;
let issuerPublicJwk: JWK;
let writeOnlyToken: string;

function yaml(up: string, iss: string): string {
  return `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
agents:
  - id: key-bot
    key_sha256: "${keyHash(AGENT_KEY)}"
identity:
  jwt:
    issuer: ${iss}
    audience: ${AUDIENCE}
    clock_skew_s: 5
    claims_to_policy: [tenant]
    required_scopes: [tickets:read]
routes:
  - name: api
    prefix: /api/
    upstream: ${up}/
  - name: tools
    prefix: /mcp/
    kind: mcp
    upstream: ${up}/mcp
`;
}

beforeAll(async () => {
  issuer = await startIssuer({ audiences: [AUDIENCE, OTHER_AUDIENCE] });
  upstream = await startUpstream();
  gw = await startTestGateway({ yaml: yaml(upstream.url, issuer.issuer), policies: { 'p.rego': POLICY } });
  goodToken = await clientCredentials(issuer, 'support-bot', 'support-secret');
  reportToken = await clientCredentials(issuer, 'report-bot', 'report-secret');
  otherAudienceToken = await clientCredentials(issuer, 'support-bot', 'support-secret', OTHER_AUDIENCE);
  writeOnlyToken = await clientCredentials(issuer, 'support-bot', 'support-secret', AUDIENCE, 'tickets:write');
  const jwks = (await (await fetch(`${issuer.issuer}/jwks`)).json()) as { keys: JWK[] };
  issuerPublicJwk = jwks.keys[0];
});

afterAll(async () => {
  issuer?.child.kill('SIGKILL');
  await gw?.close();
  await upstream?.close();
});

function base(): string {
  return gw.gateway.url;
}

function call(target: string, token?: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base()}${target}`, {
    ...init,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string>) },
  });
}

/** A token the way an attacker would make one: claims of their choosing, signed with their key. */
async function forged(claims: Record<string, unknown>, opts: { alg?: string; kid?: string; key?: CryptoKey | Uint8Array } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const key = opts.key ?? (await generateKeyPair('ES256')).privateKey;
  return new SignJWT({ sub: 'support-bot', client_id: 'support-bot', act: { sub: 'alice' }, ...claims })
    .setProtectedHeader({ alg: opts.alg ?? 'ES256', typ: 'at+jwt', kid: opts.kid ?? 'issuer-key-1' })
    .setIssuer(issuer.issuer)
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(key);
}

/** Asserts a refusal: 401 with the code and a Bearer challenge, a deny record, nothing forwarded. */
async function expectRefused(res: Response, code: string): Promise<void> {
  expect(res.status).toBe(401);
  expect(res.headers.get('x-portcullis-error')).toBe(code);
  expect(res.headers.get('www-authenticate')).toMatch(
    /^Bearer realm="portcullis"(, resource_metadata="[^"]+")?, error="invalid_token", error_description="[^"]+"$/,
  );
  const id = res.headers.get('x-portcullis-decision-id');
  const record = await gw.waitForAudit((r) => r.decision_id === id);
  expect(record).toMatchObject({ type: 'decision', decision: 'deny', code, agent: null });
}

test('G19: a real access token from the issuer is accepted; the policy sees who the agent is and whom it acts for', async () => {
  const before = upstream.received.length;
  const res = await call('/api/tickets/7', goodToken);
  expect(res.status).toBe(200);
  expect(upstream.received.length).toBe(before + 1);
  const record = await gw.waitForAudit((r) => r.decision_id === res.headers.get('x-portcullis-decision-id'));
  expect(record).toMatchObject({ decision: 'allow', agent: 'support-bot', on_behalf_of: 'alice', reasons: ['support-bot reads tickets for alice'] });

  const seen = (await (await call('/api/inspect', goodToken)).json()) as Refusal;
  expect(JSON.parse(seen.error.reasons[0])).toEqual({
    id: 'support-bot',
    method: 'jwt',
    issuer: issuer.issuer,
    subject: 'support-bot',
    client_id: 'support-bot',
    scopes: ['tickets:read'],
    claims: { tenant: 'acme' },
    on_behalf_of: 'alice',
    spiffe_id: null,
    cert_sha256: null,
  });
});

test('G19: a valid token without a required scope is refused 403 insufficient_scope, audited, not forwarded', async () => {
  const before = upstream.received.length;
  const res = await call('/api/tickets/7', writeOnlyToken);
  expect(res.status).toBe(403);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_INSUFFICIENT_SCOPE');
  expect(res.headers.get('www-authenticate')).toBe(
    'Bearer realm="portcullis", error="insufficient_scope", scope="tickets:read", error_description="the token lacks a scope this route requires"',
  );
  await gw.waitForAudit((r) => r.decision_id === res.headers.get('x-portcullis-decision-id') && r.code === 'PC_INSUFFICIENT_SCOPE');
  expect(upstream.received.length).toBe(before);
});

test('G19: a valid token the policy does not allow is denied by the policy, not by identity', async () => {
  const res = await call('/api/tickets/7', reportToken);
  expect(res.status).toBe(403);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_POLICY_DENIED');
});

test('G19 G1: the agent token is never forwarded upstream', async () => {
  const before = upstream.received.length;
  expect((await call('/api/tickets/8', goodToken)).status).toBe(200);
  const got = upstream.received[before];
  expect(got.headers.authorization).toBeUndefined();
  expect(JSON.stringify(got.headers)).not.toContain(goodToken.split('.')[2]);
});

test('G19: agent keys keep working beside tokens, and input.agent has the same shape', async () => {
  const res = await call('/api/anything', AGENT_KEY);
  expect(res.status).toBe(200);
  const seen = (await (await call('/api/inspect', AGENT_KEY)).json()) as Refusal;
  expect(JSON.parse(seen.error.reasons[0])).toEqual(agentKeyIdentity('key-bot'));
  expect((await call('/api/anything', 'not-a-key-and-not-a-token')).headers.get('x-portcullis-error')).toBe('PC_UNKNOWN_AGENT');
});

describe('G19 G4: forged and misused tokens are refused, audited and not forwarded', () => {
  let before = 0;
  beforeEach(() => {
    before = upstream.received.length;
  });
  afterEach(() => {
    expect(upstream.received.length).toBe(before);
  });

  test('signed with a foreign key under the issuer key id', async () => {
    await expectRefused(await call('/api/tickets/1', await forged({})), 'PC_TOKEN_INVALID');
  });

  test('the real token with its signature cut off, or another signature pasted on', async () => {
    const [h, p] = goodToken.split('.');
    await expectRefused(await call('/api/tickets/1', `${h}.${p}.`), 'PC_TOKEN_INVALID');
    const other = (await forged({})).split('.')[2];
    await expectRefused(await call('/api/tickets/1', `${h}.${p}.${other}`), 'PC_TOKEN_INVALID');
  });

  test('alg: none', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = new UnsecuredJWT({ sub: 'support-bot', act: { sub: 'alice' } })
      .setIssuer(issuer.issuer)
      .setAudience(AUDIENCE)
      .setExpirationTime(now + 300)
      .encode();
    await expectRefused(await call('/api/tickets/1', token), 'PC_TOKEN_INVALID');
  });

  test('HS256 keyed with the issuer public key (algorithm confusion)', async () => {
    const pem = await exportSPKI((await importJWK(issuerPublicJwk, 'ES256', { extractable: true })) as CryptoKey);
    for (const secret of [new TextEncoder().encode(pem), new TextEncoder().encode(JSON.stringify(issuerPublicJwk))]) {
      await expectRefused(await call('/api/tickets/1', await forged({}, { alg: 'HS256', key: secret })), 'PC_TOKEN_INVALID');
    }
  });

  test('a kid naming a key the issuer does not publish', async () => {
    await expectRefused(await call('/api/tickets/1', await forged({}, { kid: 'attacker-key' })), 'PC_TOKEN_INVALID');
  });

  test('for another audience (a real token the issuer made for another service)', async () => {
    await expectRefused(await call('/api/tickets/1', otherAudienceToken), 'PC_TOKEN_AUDIENCE');
  });

  test('oversized (over 8 KiB), refused before it is parsed', async () => {
    const token = await forged({ pad: 'x'.repeat(9000) });
    expect(token.length).toBeGreaterThan(8192);
    const res = await call('/api/tickets/1', token);
    await expectRefused(res, 'PC_TOKEN_INVALID');
    expect(((await res.json()) as Refusal).error.reasons).toEqual(['token too large']);
  });

  test('in the query string, even a valid one', async () => {
    const res = await call(`/api/tickets/1?access_token=${goodToken}`);
    await expectRefused(res, 'PC_TOKEN_INVALID');
    expect(((await res.json()) as Refusal).error.reasons).toEqual(['token in query string']);
  });

  test('on an MCP route the refusal is a JSON-RPC error, with the same challenge', async () => {
    const res = await call('/mcp/', await forged({}), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } }),
    });
    const text = await res.clone().text();
    await expectRefused(res, 'PC_TOKEN_INVALID');
    const body = JSON.parse(text);
    expect(body).toMatchObject({ jsonrpc: '2.0', error: { code: -32600, data: { code: 'PC_TOKEN_INVALID' } } });
  });
});

describe('G19: tokens signed with a trusted key but outside their validity or from another issuer', () => {
  // jose checks these claims only once the signature verifies, so the tokens must carry a
  // signature the gateway trusts: this gateway trusts a key the test holds, published at
  // jwks_uri (which also covers that setting, instead of discovery).
  let own: { gw: TestGateway; key: CryptoKey; iss: string; jwks: Upstream };
  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'own-1', alg: 'ES256', use: 'sig' };
    const jwks = await startUpstream((_req, res) => {
      const text = JSON.stringify({ keys: [jwk] });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text);
    });
    const iss = 'https://issuer.test';
    const config = yaml(upstream.url, iss).replace(`    issuer: ${iss}\n`, `    issuer: ${iss}\n    jwks_uri: ${jwks.url}/jwks\n`);
    own = { gw: await startTestGateway({ yaml: config, policies: { 'p.rego': POLICY } }), key: privateKey, iss, jwks };
  });
  afterAll(async () => {
    await own.gw.close();
    await own.jwks.close();
  });

  async function signed(claims: { exp?: number; nbf?: number; iss?: string; aud?: string; sub?: string }): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      client_id: 'support-bot',
      act: { sub: 'alice' },
      scope: 'tickets:read',
      sub: 'support-bot',
      iss: own.iss,
      aud: AUDIENCE,
      iat: now,
      exp: now + 300,
      ...claims,
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'own-1' })
      .sign(own.key);
  }
  async function refused(token: string, code: string): Promise<void> {
    const before = upstream.received.length;
    const res = await fetch(`${own.gw.gateway.url}/api/tickets/1`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-portcullis-error')).toBe(code);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    await own.gw.waitForAudit((r) => r.decision_id === res.headers.get('x-portcullis-decision-id') && r.code === code);
    expect(upstream.received.length).toBe(before);
  }

  test('a well-formed token with the trusted key is accepted (the control)', async () => {
    const res = await fetch(`${own.gw.gateway.url}/api/tickets/1`, { headers: { authorization: `Bearer ${await signed({})}` } });
    expect(res.status).toBe(200);
  });

  test('expired', async () => {
    await refused(await signed({ exp: Math.floor(Date.now() / 1000) - 60 }), 'PC_TOKEN_EXPIRED');
  });

  test('not yet valid', async () => {
    await refused(await signed({ nbf: Math.floor(Date.now() / 1000) + 3600 }), 'PC_TOKEN_INVALID');
  });

  test('from another issuer', async () => {
    await refused(await signed({ iss: 'https://evil.test' }), 'PC_TOKEN_INVALID');
  });

  test('without exp', async () => {
    const token = await new SignJWT({ sub: 'support-bot', iss: own.iss, aud: AUDIENCE }).setProtectedHeader({ alg: 'ES256', kid: 'own-1' }).sign(own.key);
    await refused(token, 'PC_TOKEN_INVALID');
  });
});

test('G19: with the issuer down, keys already fetched keep verifying and an unknown kid is refused', async () => {
  // The gateway fetched the issuer's keys for the tests above; now the issuer goes away.
  issuer.child.kill('SIGKILL');
  await new Promise((r) => issuer.child.once('exit', r));
  await expect(fetch(`${issuer.issuer}/jwks`)).rejects.toThrow();
  expect((await call('/api/tickets/9', goodToken)).status).toBe(200);
  const before = upstream.received.length;
  await expectRefused(await call('/api/tickets/9', await forged({}, { kid: 'rotated-key-2' })), 'PC_TOKEN_INVALID');
  expect(upstream.received.length).toBe(before);
});

test('G19: once the cached key set is stale and the issuer is down, the keys last fetched still verify; an unknown kid is refused', async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const jwks = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  const method = jwtMethod({
    issuer: 'https://issuer.test',
    audience: AUDIENCE,
    jwksUri: `${jwks.url}/jwks`,
    algorithms: ['ES256'],
    clockSkewS: 0,
    requiredClaims: [],
    agentClaim: 'sub',
    onBehalfOfClaim: 'act.sub',
    claimsToPolicy: [],
    requiredScopes: [],
    resource: null,
    required: false,
  });
  const sign = (kid: string, key: CryptoKey) =>
    new SignJWT({ sub: 'cached-bot' })
      .setProtectedHeader({ alg: 'ES256', kid })
      .setIssuer('https://issuer.test')
      .setAudience(AUDIENCE)
      .setExpirationTime('1h')
      .sign(key);
  const token = await sign('k1', privateKey);
  expect(await method.identify({ bearer: token, resource: null })).toMatchObject({ id: 'cached-bot', method: 'jwt' });
  expect(jwks.received.length).toBe(1);
  await jwks.close();
  // Eleven minutes on: past jose's cache age (10 min) and cooldown (30 s), so every lookup refetches, and fails.
  const now = Date.now();
  const clock = jest.spyOn(Date, 'now').mockReturnValue(now + 11 * 60_000);
  try {
    expect(await method.identify({ bearer: token, resource: null })).toMatchObject({ id: 'cached-bot' });
    const foreign = await sign('k2', (await generateKeyPair('ES256')).privateKey);
    const refused = await Promise.resolve(method.identify({ bearer: foreign, resource: null })).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GatewayError);
    expect(refused).toMatchObject({ code: 'PC_TOKEN_INVALID', reasons: ['token signing key unknown'] });
  } finally {
    clock.mockRestore();
  }
});

describe('G19: a token that verified is answered from memory only as itself, for its audience, until its exp and for at most a minute', () => {
  const ISS = 'https://issuer.test';
  const RESOURCE = 'https://gw.test/tools/';
  let jwks: Upstream;
  let key: CryptoKey;
  let method: ReturnType<typeof jwtMethod>;
  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    method = jwtMethod({
      issuer: ISS,
      audience: AUDIENCE,
      jwksUri: `${jwks.url}/jwks`,
      algorithms: ['ES256'],
      clockSkewS: 0,
      requiredClaims: [],
      agentClaim: 'sub',
      onBehalfOfClaim: 'act.sub',
      claimsToPolicy: ['ctx'],
      requiredScopes: [],
      resource: null,
      required: false,
    });
  });
  afterAll(() => jwks.close());
  const sign = (claims: Record<string, unknown>, exp: number | string = '1h', signer = key) =>
    new SignJWT({ sub: 'memo-bot', aud: AUDIENCE, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISS)
      .setExpirationTime(exp)
      .sign(signer);
  const identify = (bearer: string, resource: string | null = null) =>
    Promise.resolve(method.identify({ bearer, resource })).catch((e: unknown) => e as GatewayError);

  test('re-presented, the same (deeply frozen) identity is answered', async () => {
    const token = await sign({ ctx: { team: ['a'] } });
    const first = await identify(token);
    expect(first).toMatchObject({ id: 'memo-bot', method: 'jwt', claims: { ctx: { team: ['a'] } } });
    expect(await identify(token)).toBe(first);
    const ctx = (first as unknown as { claims: { ctx: { team: string[] } } }).claims.ctx;
    expect(Object.isFrozen(ctx) && Object.isFrozen(ctx.team)).toBe(true);
  });

  test('its header and claims under another signature are verified, and refused', async () => {
    const token = await sign({});
    expect(await identify(token)).toMatchObject({ id: 'memo-bot' });
    const [h, p] = token.split('.');
    const other = (await sign({}, '1h', (await generateKeyPair('ES256')).privateKey)).split('.')[2];
    expect(await identify(`${h}.${p}.${other}`)).toMatchObject({ code: 'PC_TOKEN_INVALID', reasons: ['token signature invalid'] });
    expect(await identify(`${h}.${p}.`)).toMatchObject({ code: 'PC_TOKEN_INVALID' });
  });

  test('accepted for one MCP resource, it is checked again, and refused, for another', async () => {
    const token = await sign({ aud: RESOURCE });
    expect(await identify(token, RESOURCE)).toMatchObject({ id: 'memo-bot' });
    expect(await identify(token, 'https://gw.test/other/')).toMatchObject({ code: 'PC_TOKEN_AUDIENCE' });
    expect(await identify(token, null)).toMatchObject({ code: 'PC_TOKEN_AUDIENCE' });
  });

  test('past its exp it is verified again, and refused expired', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await sign({}, exp);
    expect(await identify(token)).toMatchObject({ id: 'memo-bot' });
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    expect(await identify(token)).toMatchObject({ code: 'PC_TOKEN_EXPIRED' });
  });

  test('after VERIFIED_TTL_MS it is verified again', async () => {
    const token = await sign({});
    const first = await identify(token);
    const clock = jest.spyOn(Date, 'now').mockReturnValue(Date.now() + VERIFIED_TTL_MS + 1);
    try {
      const again = await identify(token);
      expect(again).toMatchObject({ id: 'memo-bot' });
      expect(again).not.toBe(first);
    } finally {
      clock.mockRestore();
    }
  });
});

describe('G19: an identity configuration that would accept forged tokens does not start', () => {
  const file = '/etc/portcullis/portcullis.yaml';
  const config = (jwt: string) => `policy: { path: /, watch: false }
audit: { path: /tmp/audit }
identity:
  jwt:
${jwt}
routes:
  - name: api
    prefix: /api/
    upstream: http://127.0.0.1:1/
`;
  function refusal(text: string): ConfigError {
    try {
      parseConfig(text, file);
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error('the configuration was accepted');
  }

  test('an issuer without an audience', () => {
    const err = refusal(config('    issuer: https://issuer.test'));
    expect(err.code).toBe('CONFIG_MISSING_KEY');
    expect(err.keyPath).toBe('identity.jwt.audience');
    expect(err.message).toMatch(/^\/etc\/portcullis\/portcullis\.yaml:\d+:\d+: identity\.jwt\.audience: /);
  });

  test.each(['HS256', 'none'])('%s among the algorithms', (alg) => {
    const err = refusal(config(`    issuer: https://issuer.test\n    audience: ${AUDIENCE}\n    algorithms: [ES256, ${alg}]`));
    expect(err.code).toBe('CONFIG_ENUM');
    expect(err.keyPath).toBe('identity.jwt.algorithms[1]');
    expect(err.message).toMatch(new RegExp(`^/etc/portcullis/portcullis\\.yaml:7:\\d+: identity\\.jwt\\.algorithms\\[1\\]: .*${alg}`));
  });

  test('a clock skew beyond five minutes', () => {
    const err = refusal(config(`    issuer: https://issuer.test\n    audience: ${AUDIENCE}\n    clock_skew_s: 3600`));
    expect(err.code).toBe('CONFIG_RANGE');
    expect(err.keyPath).toBe('identity.jwt.clock_skew_s');
  });
});

/** A real access token from the authorization server, by client credentials. */
function clientCredentials(iss: Issuer, client: string, secret: string, resource = AUDIENCE, scope = 'tickets:read'): Promise<string> {
  return clientCredentialsToken(iss, { client, secret, resource, scope });
}

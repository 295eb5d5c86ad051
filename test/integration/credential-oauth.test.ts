/**
 * `type: oauth2_client_credentials` against a real authorization server (oidc-provider, in its
 * own process: test/helpers/oidc-issuer.mjs), which counts its token requests: the upstream
 * gets a token the server minted (verified against its JWKS), never the agent's key; 200
 * concurrent calls cost one token request; a token is refreshed ahead of its expiry; narrower
 * decision scopes get their own token, broader ones are denied without a token request; a token
 * endpoint that is down, slow or refusing refuses the call 503 PC_CREDENTIAL_UNAVAILABLE,
 * audited, nothing forwarded, its body only in the log; every minted token is masked in
 * answers, and no secret or token is logged.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRemoteJWKSet, decodeJwt, exportJWK, exportPKCS8, generateKeyPair, jwtVerify } from 'jose';
import { parseConfig } from '../../src/config/load';
import { brokerContext } from '../../src/credential-injector/broker-context';
import { createProvider } from '../../src/credential-injector/providers';
import { GatewayError } from '../../src/errors';
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { type Issuer, startIssuer, tokenCounts } from '../helpers/oidc';

const CRM = 'https://crm.test/';
const AGENT_KEY = 'oauth-test-agent-key-0001';
const GW_SECRET = 'gw-client-secret-5b1f9e0c7d';
const POST_SECRET = 'post-client-secret-a83c21f4e6';
const REFUSAL_MARKER = 'REFUSAL-MARKER-7731';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

special if endswith(input.request.path, "/narrow")
special if endswith(input.request.path, "/broad")
special if endswith(input.request.path, "/denied")

decision := {"allow": true, "reasons": ["key-bot"]} if {
	input.agent.id == "key-bot"
	not special
}

decision := {"allow": true, "reasons": ["read only"], "scopes": ["tickets:read"]} if {
	input.agent.id == "key-bot"
	endswith(input.request.path, "/narrow")
}

decision := {"allow": true, "reasons": ["more than configured"], "scopes": ["tickets:read", "tickets:admin"]} if {
	input.agent.id == "key-bot"
	endswith(input.request.path, "/broad")
}
`;

let issuer: Issuer;
let shortIssuer: Issuer;
let deadIssuer: Issuer;
let upstream: Upstream;
let badAs: http.Server;
let badAsUrl: string;
let gw: TestGateway;
/** Every token the upstream received, to look for in logs at the end. */
const seen = new Set<string>();

/** A token endpoint that misbehaves by path: /refuse (400 with a recognisable body echoing what it got), /not-json, /no-token, /slow (never answers). */
async function startBadAs(): Promise<void> {
  badAs = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      if (req.url === '/slow') return; // never answers
      if (req.url === '/refuse') {
        const text = JSON.stringify({ error: 'invalid_client', error_description: `${REFUSAL_MARKER}: you sent ${body}` });
        res.writeHead(400, { 'content-type': 'application/json' }).end(text);
      } else if (req.url === '/not-json') res.writeHead(200, { 'content-type': 'text/html' }).end(`<html>${REFUSAL_MARKER}</html>`);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token_type: 'Bearer', note: REFUSAL_MARKER }));
    });
  });
  await new Promise<void>((r) => badAs.listen(0, '127.0.0.1', () => r()));
  badAsUrl = `http://127.0.0.1:${(badAs.address() as AddressInfo).port}`;
}

function yaml(dir: string): string {
  const cc = (lines: string) =>
    `    type: oauth2_client_credentials\n${lines
      .trim()
      .split('\n')
      .map((l) => `    ${l.trim()}`)
      .join('\n')}\n`;
  return `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
agents:
  - id: key-bot
    key_sha256: "${keyHash(AGENT_KEY)}"
credentials:
  crm:
${cc(`token_url: ${issuer.issuer}/token
client_id: portcullis-gw
client_secret_env: GW_SECRET
scope: [tickets:read, tickets:write]
resource: ${CRM}`)}
  crm-post:
${cc(`issuer: ${issuer.issuer}
client_id: portcullis-post
auth_method: client_secret_post
client_secret_file: ./post-secret
scope: [tickets:read]
resource: ${CRM}`)}
  crm-jwt:
${cc(`token_url: ${issuer.issuer}/token
client_id: portcullis-jwt
auth_method: private_key_jwt
private_key_file: ${path.join(dir, 'jwt-key.pem')}
kid: gw-key-1
scope: [tickets:read]
resource: ${CRM}`)}
  crm-unused:
${cc(`token_url: ${issuer.issuer}/token
client_id: portcullis-gw
client_secret_env: GW_SECRET
resource: ${CRM}`)}
  crm-short:
${cc(`token_url: ${shortIssuer.issuer}/token
client_id: portcullis-gw
client_secret_env: GW_SECRET
refresh_before_s: 1
resource: ${CRM}`)}
  wrong-secret:
${cc(`token_url: ${issuer.issuer}/token
client_id: portcullis-gw
client_secret_env: WRONG_SECRET
resource: ${CRM}`)}
  down:
${cc(`token_url: ${deadIssuer.issuer}/token
client_id: portcullis-gw
client_secret_env: GW_SECRET`)}
  slow:
${cc(`token_url: ${badAsUrl}/slow
client_id: portcullis-gw
client_secret_env: GW_SECRET
timeout_ms: 300`)}
  refusing:
${cc(`token_url: ${badAsUrl}/refuse
client_id: portcullis-post
auth_method: client_secret_post
client_secret_file: ./post-secret`)}
  not-json:
${cc(`token_url: ${badAsUrl}/not-json
client_id: portcullis-gw
client_secret_env: GW_SECRET`)}
  no-token:
${cc(`token_url: ${badAsUrl}/no-token
client_id: portcullis-gw
client_secret_env: GW_SECRET`)}
routes:
${['crm', 'crm-post', 'crm-jwt', 'crm-unused', 'crm-short', 'wrong-secret', 'down', 'slow', 'refusing', 'not-json', 'no-token']
  .map((c) => `  - name: ${c}\n    prefix: /${c}/\n    upstream: ${upstream.url}/\n    credential: ${c}\n`)
  .join('')}`;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-oauth-'));

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(path.join(dir, 'jwt-key.pem'), await exportPKCS8(privateKey));
  const jwk = { ...(await exportJWK(publicKey)), kid: 'gw-key-1', alg: 'ES256', use: 'sig' };
  const clients = [
    { client_id: 'portcullis-gw', client_secret: GW_SECRET, grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    {
      client_id: 'portcullis-post',
      client_secret: POST_SECRET,
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    },
    {
      client_id: 'portcullis-jwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [jwk] },
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    },
  ];
  [issuer, shortIssuer, deadIssuer] = await Promise.all([
    startIssuer({ audiences: [CRM], clients }),
    startIssuer({ audiences: [CRM], clients, ttl: 2 }),
    startIssuer({ audiences: [CRM], clients }),
  ]);
  await startBadAs();
  upstream = await startUpstream((req, res, body) => {
    const auth = req.headers.authorization ?? '';
    if (auth.startsWith('Bearer ')) seen.add(auth.slice(7));
    // Echoes a token it got earlier, not the one of this call: still masked.
    const text = req.url?.includes('/echo-first')
      ? JSON.stringify({ first: [...seen][0] })
      : JSON.stringify({ url: req.url, authorization: auth, body: body.toString() });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  });
  gw = await startTestGateway({
    dir,
    yaml: yaml(dir),
    policies: { 'p.rego': POLICY },
    env: { GW_SECRET, WRONG_SECRET: 'not-the-client-secret-123' },
    files: { 'post-secret': `${POST_SECRET}\n` },
  });
}, 30_000);

afterAll(async () => {
  for (const i of [issuer, shortIssuer, deadIssuer]) i?.child.kill('SIGKILL');
  await gw?.close();
  await upstream?.close();
  badAs?.closeAllConnections();
  badAs?.close();
});

function call(target: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${gw.gateway.url}${target}`, { ...init, headers: { authorization: `Bearer ${AGENT_KEY}`, ...(init.headers as Record<string, string>) } });
}

/** The Bearer token of the upstream's last request. */
function lastToken(): string {
  const auth = upstream.received.at(-1)!.headers.authorization ?? '';
  expect(auth).toMatch(/^Bearer [A-Za-z0-9._~+/-]+=*$/);
  return auth.slice(7);
}

async function verified(token: string, iss: Issuer = issuer) {
  return (await jwtVerify(token, createRemoteJWKSet(new URL(`${iss.issuer}/jwks`)), { issuer: iss.issuer, audience: CRM })).payload;
}

/** The call is refused 503 PC_CREDENTIAL_UNAVAILABLE with its deny record, and nothing reached the upstream. */
async function expectUnavailable(target: string): Promise<string> {
  const before = upstream.received.length;
  const res = await call(target);
  const text = await res.text();
  expect(res.status).toBe(503);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_CREDENTIAL_UNAVAILABLE');
  const id = res.headers.get('x-portcullis-decision-id');
  await gw.waitForAudit((r) => r.type === 'decision' && r.decision_id === id && r.decision === 'deny' && r.code === 'PC_CREDENTIAL_UNAVAILABLE');
  expect(upstream.received.length).toBe(before);
  expect(text).not.toContain(REFUSAL_MARKER);
  return text;
}

test('G24: an allowed call carries a token the authorization server minted (verified against its JWKS), never the agent key; the record names its fingerprint and scopes, not the token', async () => {
  const before = (await tokenCounts(issuer)).tokenRequests;
  const res = await call('/crm/tickets/1');
  expect(res.status).toBe(200);
  const token = lastToken();
  expect(token).not.toBe(AGENT_KEY);
  expect(JSON.stringify(upstream.received.at(-1)!.headers)).not.toContain(AGENT_KEY);
  const claims = await verified(token);
  expect(claims).toMatchObject({ client_id: 'portcullis-gw', scope: 'tickets:read tickets:write' });
  expect((await tokenCounts(issuer)).tokenRequests).toBe(before + 1);
  const id = res.headers.get('x-portcullis-decision-id');
  const record = await gw.waitForAudit((r) => r.type === 'decision' && r.decision_id === id);
  expect(record).toMatchObject({ decision: 'allow', credential: 'crm', credential_scopes: ['tickets:read', 'tickets:write'] });
  expect(record.credential_fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
  expect(gw.auditText()).not.toContain(token);
  // Cached: the next call costs no token request and carries the same token.
  expect((await call('/crm/tickets/2')).status).toBe(200);
  expect(lastToken()).toBe(token);
  expect((await tokenCounts(issuer)).tokenRequests).toBe(before + 1);
});

test('G24: 200 concurrent calls cost exactly one token request (single flight), by client_secret_post and a token endpoint found by discovery', async () => {
  const before = (await tokenCounts(issuer)).tokenRequests;
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => call(`/crm-post/t/${i}`).then((r) => r.status)));
  expect(answers.every((s) => s === 200)).toBe(true);
  expect((await tokenCounts(issuer)).tokenRequests).toBe(before + 1);
  const tokens = new Set(upstream.received.slice(-200).map((r) => r.headers.authorization));
  expect(tokens.size).toBe(1);
  expect(await verified(lastToken())).toMatchObject({ client_id: 'portcullis-post', scope: 'tickets:read' });
}, 30_000);

test('G24: private_key_jwt: the gateway authenticates with a signed client assertion and gets a token', async () => {
  expect((await call('/crm-jwt/x')).status).toBe(200);
  expect(await verified(lastToken())).toMatchObject({ client_id: 'portcullis-jwt', scope: 'tickets:read' });
});

test('G24: a token is refreshed ahead of its expiry: a call after the refresh time gets a new token', async () => {
  const before = (await tokenCounts(shortIssuer)).tokenRequests;
  expect((await call('/crm-short/a')).status).toBe(200);
  const first = lastToken();
  expect((await call('/crm-short/b')).status).toBe(200);
  expect(lastToken()).toBe(first);
  expect((await tokenCounts(shortIssuer)).tokenRequests).toBe(before + 1);
  // expires_in 2 s, refresh_before_s 1: from 1 s on, a call waits for a new one. Time has to pass here.
  await new Promise((r) => setTimeout(r, 1100));
  expect((await call('/crm-short/c')).status).toBe(200);
  const second = lastToken();
  expect(second).not.toBe(first);
  expect((await tokenCounts(shortIssuer)).tokenRequests).toBe(before + 2);
  expect((await verified(second, shortIssuer)).exp! * 1000).toBeGreaterThan(Date.now());
});

test('G24: narrower decision scopes get their own token with just those scopes; broader ones are denied PC_POLICY_ERROR without a token request', async () => {
  expect((await call('/crm/warm')).status).toBe(200);
  const broad = lastToken();
  const before = (await tokenCounts(issuer)).tokenRequests;
  const res = await call('/crm/tickets/narrow');
  expect(res.status).toBe(200);
  const narrow = lastToken();
  expect(narrow).not.toBe(broad);
  expect((await verified(narrow)).scope).toBe('tickets:read');
  const id = res.headers.get('x-portcullis-decision-id');
  expect(await gw.waitForAudit((r) => r.type === 'decision' && r.decision_id === id)).toMatchObject({ credential_scopes: ['tickets:read'] });
  expect((await call('/crm/again/narrow')).status).toBe(200);
  expect(lastToken()).toBe(narrow);
  expect((await tokenCounts(issuer)).tokenRequests).toBe(before + 1);

  const received = upstream.received.length;
  const refused = await call('/crm/tickets/broad');
  expect(refused.status).toBe(403);
  expect(refused.headers.get('x-portcullis-error')).toBe('PC_POLICY_ERROR');
  expect(await refused.text()).toContain('tickets:admin');
  expect(upstream.received.length).toBe(received);
  expect((await tokenCounts(issuer)).tokenRequests).toBe(before + 1);
});

test('G24: a denied call costs no token request', async () => {
  const before = (await tokenCounts(issuer)).tokenRequests;
  const res = await call('/crm-unused/x/denied');
  expect(res.status).toBe(403);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_POLICY_DENIED');
  expect((await tokenCounts(issuer)).tokenRequests).toBe(before);
});

test('G24: a token endpoint that is down, slow, refusing, or answers no token refuses the call 503 PC_CREDENTIAL_UNAVAILABLE, audited, nothing forwarded; its body goes to the log only, with the client secret masked', async () => {
  deadIssuer.child.kill('SIGKILL');
  await new Promise((r) => deadIssuer.child.once('exit', r));
  expect(await expectUnavailable('/down/x')).toMatch(/could not be reached/);
  const started = Date.now();
  expect(await expectUnavailable('/slow/x')).toMatch(/did not answer within 300 ms/);
  expect(Date.now() - started).toBeLessThan(3000);
  expect(await expectUnavailable('/refusing/x')).toMatch(/answered 400/);
  expect(await expectUnavailable('/wrong-secret/x')).toMatch(/answered 401/);
  expect(await expectUnavailable('/not-json/x')).toMatch(/not JSON/);
  expect(await expectUnavailable('/no-token/x')).toMatch(/no usable access_token/);
  // The refusal's body is in the log, for operators; the secret the endpoint echoed is not.
  const logs = gw.logs();
  expect(logs).toContain(REFUSAL_MARKER);
  expect(logs).toContain('the token endpoint refused the token request');
  expect(logs).not.toContain(POST_SECRET);
});

test('G24: every minted token is masked in answers: the one attached to the call, and an older one of the same credential', async () => {
  const res = await call('/crm/echo');
  const text = await res.text();
  const token = lastToken();
  expect(text).not.toContain(token);
  expect(JSON.parse(text).authorization).toMatch(/^Bearer \*+$/);
  // The first token the upstream ever got (crm's default one) echoed on a call that attached a narrower one.
  const first = [...seen][0];
  const echo = await call('/crm/echo-first/narrow');
  expect(lastToken()).not.toBe(first);
  const echoed = await echo.text();
  expect(echoed).not.toContain(first);
  expect(JSON.parse(echoed).first).toMatch(/^\*+$/);
});

test('G24: a provider built from the config reports health, and refuses a scope it does not have as a policy error', async () => {
  const config = parseConfig(yaml(dir), path.join(dir, 'portcullis.yaml'), { env: { ...process.env, GW_SECRET, WRONG_SECRET: 'x-x-x-x' } });
  const broker = brokerContext();
  broker.setSigner({ sign: (t) => `signed:${t}` });
  const crm = config.routes.find((r) => r.name === 'crm')!.credential!;
  const provider = createProvider(crm, broker);
  expect(provider.health()).toMatchObject({ ok: true, fetches: 0, cacheHits: 0, failures: 0, expiresInS: null, lastError: null });
  const a = await provider.obtain({ identity: null, subjectToken: null, scopes: null });
  expect(a.scopes).toEqual(['tickets:read', 'tickets:write']);
  const again = provider.obtain({ identity: null, subjectToken: null, scopes: null });
  expect(again).toBe(a); // synchronous: the same frozen attachment
  expect(Object.isFrozen(a)).toBe(true);
  const h = provider.health();
  expect(h).toMatchObject({ ok: true, fetches: 1, cacheHits: 1, failures: 0, lastError: null });
  expect(h.expiresInS).toBeGreaterThan(200);
  expect(() => provider.obtain({ identity: null, subjectToken: null, scopes: ['tickets:delete'] })).toThrow(GatewayError);
  const down = createProvider(config.routes.find((r) => r.name === 'refusing')!.credential!, broker);
  await expect(down.obtain({ identity: null, subjectToken: null, scopes: null })).rejects.toMatchObject({ code: 'PC_CREDENTIAL_UNAVAILABLE' });
  expect(down.health()).toMatchObject({ ok: false, fetches: 1, failures: 1 });
  expect(JSON.stringify(down.health())).not.toContain(POST_SECRET);
  provider.close?.();
  down.close?.();
});

test('G24: no client secret and no minted token is in the log or the audit trail', () => {
  expect(seen.size).toBeGreaterThanOrEqual(4);
  const logs = gw.logs();
  const trail = gw.auditText();
  for (const secret of [GW_SECRET, POST_SECRET, ...seen]) {
    expect(logs).not.toContain(secret);
    expect(trail).not.toContain(secret);
  }
  for (const t of seen) expect(decodeJwt(t).iss).toBeDefined();
});

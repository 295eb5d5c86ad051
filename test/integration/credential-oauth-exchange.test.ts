/**
 * `type: oauth2_token_exchange` (RFC 8693) against a real authorization server (oidc-provider
 * with the token exchange grant registered, test/helpers/oidc-issuer.mjs): a caller identified by
 * its token (here a client-credentials token of the agent's own client, as the subject) is
 * exchanged for a token for the upstream, with the gateway's own client-credentials token as the
 * actor. The upstream sees the exchanged token — the subject's sub, `act` naming the gateway,
 * the configured audience — never the caller's; exchanges are cached per subject; a caller with
 * an agent key has no token to exchange and is refused; nothing is cached past the subject
 * token's expiry.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { parseConfig } from '../../src/config/load';
import { brokerContext } from '../../src/credential-injector/broker-context';
import { createProvider } from '../../src/credential-injector/providers';
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { clientCredentialsToken, type Issuer, startIssuer, tokenCounts } from '../helpers/oidc';

const GATEWAY = 'https://gateway.test/';
const CRM = 'https://crm.test/';
const AGENT_KEY = 'exchange-test-agent-key-0001';
const GW_SECRET = 'gw-exchange-secret-4c7a19d2e8';
const AGENT_SECRETS = { 'agent-one': 'agent-one-secret-91b3', 'agent-two': 'agent-two-secret-5e02' } as const;
/** Subject tokens live 20 s, exchanged ones 300 s: the cache must stop at the subject's expiry. */
const SUBJECT_TTL = 20;

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["agents read the CRM"]} if input.agent.id in {"agent-one", "agent-two", "key-bot"}
`;

let issuer: Issuer;
let upstream: Upstream;
let gw: TestGateway;
const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-exchange-'));
/** Every token the upstream and the callers saw, to look for in logs at the end. */
const seen = new Set<string>();

function yaml(): string {
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
    issuer: ${issuer.issuer}
    audience: ${GATEWAY}
    agent_claim: client_id
credentials:
  gateway-self:
    type: oauth2_client_credentials
    token_url: ${issuer.issuer}/token
    client_id: portcullis-gw
    client_secret_env: GW_SECRET
    resource: ${GATEWAY}
  crm-for-caller:
    type: oauth2_token_exchange
    issuer: ${issuer.issuer}
    client_id: portcullis-gw
    client_secret_env: GW_SECRET
    actor: gateway-self
    resource: ${CRM}
    scope: [tickets:read]
  crm-elsewhere:
    type: oauth2_token_exchange
    token_url: ${issuer.issuer}/token
    client_id: portcullis-gw
    client_secret_env: GW_SECRET
    resource: https://not-served.test/
routes:
  - name: crm
    prefix: /crm/
    upstream: ${upstream.url}/
    credential: crm-for-caller
  - name: elsewhere
    prefix: /elsewhere/
    upstream: ${upstream.url}/
    credential: crm-elsewhere
`;
}

/** A real access token of an agent's client, for the gateway's audience: the subject token. */
async function agentToken(client: keyof typeof AGENT_SECRETS): Promise<string> {
  const token = await clientCredentialsToken(issuer, { resource: GATEWAY, scope: 'tickets:read', client, secret: AGENT_SECRETS[client] });
  seen.add(token);
  return token;
}

beforeAll(async () => {
  const client = (id: string, secret: string, grants: string[]) => ({
    client_id: id,
    client_secret: secret,
    grant_types: grants,
    redirect_uris: [],
    response_types: [],
  });
  issuer = await startIssuer({
    audiences: [GATEWAY, CRM],
    tokenExchange: true,
    ttl: SUBJECT_TTL,
    exchangeTtl: 300,
    clients: [
      client('portcullis-gw', GW_SECRET, ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']),
      client('agent-one', AGENT_SECRETS['agent-one'], ['client_credentials']),
      client('agent-two', AGENT_SECRETS['agent-two'], ['client_credentials']),
    ],
  });
  upstream = await startUpstream((req, res) => {
    const auth = req.headers.authorization ?? '';
    if (auth.startsWith('Bearer ')) seen.add(auth.slice(7));
    const text = JSON.stringify({ authorization: auth });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  });
  gw = await startTestGateway({ dir, yaml: yaml(), policies: { 'p.rego': POLICY }, env: { GW_SECRET } });
}, 30_000);

afterAll(async () => {
  issuer?.child.kill('SIGKILL');
  await gw?.close();
  await upstream?.close();
});

function call(target: string, bearer: string): Promise<Response> {
  return fetch(`${gw.gateway.url}${target}`, { headers: { authorization: `Bearer ${bearer}` } });
}

function lastToken(): string {
  const auth = upstream.received.at(-1)!.headers.authorization ?? '';
  expect(auth).toMatch(/^Bearer [A-Za-z0-9._~+/-]+=*$/);
  return auth.slice(7);
}

async function verified(token: string) {
  return (await jwtVerify(token, createRemoteJWKSet(new URL(`${issuer.issuer}/jwks`)), { issuer: issuer.issuer, audience: CRM })).payload;
}

test("G24: the upstream gets the exchanged token — the caller's sub, act naming the gateway's client, the configured audience — never the caller's own token", async () => {
  const subject = await agentToken('agent-one');
  const before = await tokenCounts(issuer);
  const res = await call('/crm/tickets', subject);
  const text = await res.text();
  expect(res.status).toBe(200);
  const exchanged = lastToken();
  expect(exchanged).not.toBe(subject);
  expect(JSON.stringify(upstream.received.at(-1)!.headers)).not.toContain(subject);
  const claims = await verified(exchanged);
  expect(claims).toMatchObject({ sub: decodeJwt(subject).sub, act: { sub: 'portcullis-gw' }, aud: CRM, scope: 'tickets:read', client_id: 'portcullis-gw' });
  // One exchange, and one client-credentials request for the actor token.
  expect(await tokenCounts(issuer)).toEqual({ tokenRequests: before.tokenRequests + 2, exchanges: before.exchanges + 1 });
  // The upstream echoed the exchanged token: masked.
  expect(text).not.toContain(exchanged);
  expect(JSON.parse(text).authorization).toMatch(/^Bearer \*+$/);
  const id = res.headers.get('x-portcullis-decision-id');
  expect(await gw.waitForAudit((r) => r.type === 'decision' && r.decision_id === id)).toMatchObject({
    decision: 'allow',
    credential: 'crm-for-caller',
    credential_scopes: ['tickets:read'],
  });
});

test('G24: exchanges are cached per subject: the same caller again costs nothing, 50 concurrent calls of a new caller cost one exchange', async () => {
  const one = await agentToken('agent-one');
  expect((await call('/crm/a', one)).status).toBe(200);
  const first = lastToken();
  const before = await tokenCounts(issuer);
  expect((await call('/crm/b', one)).status).toBe(200);
  expect(lastToken()).toBe(first);
  expect(await tokenCounts(issuer)).toEqual(before);

  const two = await agentToken('agent-two');
  const after = await tokenCounts(issuer);
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => call(`/crm/c/${i}`, two).then((r) => r.status)));
  expect(answers.every((s) => s === 200)).toBe(true);
  // The actor token is cached too: one exchange and nothing else.
  expect(await tokenCounts(issuer)).toEqual({ tokenRequests: after.tokenRequests + 1, exchanges: after.exchanges + 1 });
  const tokens = new Set(upstream.received.slice(-50).map((r) => r.headers.authorization));
  expect(tokens.size).toBe(1);
  expect((await verified(lastToken())).sub).toBe(decodeJwt(two).sub);
}, 30_000);

test('G24: a caller identified by an agent key has no token to exchange: 403 PC_POLICY_ERROR, audited, nothing forwarded, no token request', async () => {
  const before = await tokenCounts(issuer);
  const received = upstream.received.length;
  const res = await call('/crm/x', AGENT_KEY);
  expect(res.status).toBe(403);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_POLICY_ERROR');
  expect(await res.text()).toContain('token exchange needs a caller identified by a token');
  const id = res.headers.get('x-portcullis-decision-id');
  await gw.waitForAudit((r) => r.type === 'decision' && r.decision_id === id && r.decision === 'deny' && r.code === 'PC_POLICY_ERROR');
  expect(upstream.received.length).toBe(received);
  expect(await tokenCounts(issuer)).toEqual(before);
});

test('G24: an exchange the authorization server refuses is 503 PC_CREDENTIAL_UNAVAILABLE, nothing forwarded, its error body only in the log', async () => {
  const subject = await agentToken('agent-one');
  const received = upstream.received.length;
  const res = await call('/elsewhere/x', subject);
  const text = await res.text();
  expect(res.status).toBe(503);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_CREDENTIAL_UNAVAILABLE');
  expect(text).toMatch(/answered 400/);
  expect(text).not.toContain('invalid_target');
  expect(upstream.received.length).toBe(received);
  expect(gw.logs()).toContain('invalid_target');
});

test("G24: an exchanged token is never cached past the subject token's expiry", async () => {
  const config = parseConfig(yaml(), path.join(dir, 'portcullis.yaml'), { env: { ...process.env, GW_SECRET } });
  const broker = brokerContext();
  broker.setSigner({ sign: (t) => `signed:${t}` });
  const c = config.routes.find((r) => r.name === 'crm')!.credential!;
  const provider = createProvider(c, broker);
  const subject = await agentToken('agent-two');
  const exp = decodeJwt(subject).exp!;
  const a = await provider.obtain({ identity: null, subjectToken: subject, scopes: null });
  expect(a.scopes).toEqual(['tickets:read']);
  expect(provider.obtain({ identity: null, subjectToken: subject, scopes: null })).toBe(a);
  // The exchanged token lives 300 s; the cache entry ends with the subject token (20 s).
  const h = provider.health();
  expect(h).toMatchObject({ ok: true, fetches: 1, cacheHits: 1, failures: 0 });
  expect(h.expiresInS).toBeLessThanOrEqual(exp - Math.floor(Date.now() / 1000));
  expect(h.expiresInS).toBeLessThanOrEqual(SUBJECT_TTL);
  let refusal: unknown;
  try {
    provider.obtain({ identity: null, subjectToken: subject, scopes: ['tickets:write'] });
  } catch (err) {
    refusal = err;
  }
  expect(refusal).toMatchObject({ code: 'PC_POLICY_ERROR', reasons: [expect.stringMatching(/beyond its configured scope/)] });
  provider.close?.();
});

test('G24: no subject token, exchanged token, actor token or client secret is in the log or the audit trail', () => {
  expect(seen.size).toBeGreaterThanOrEqual(5);
  const logs = gw.logs();
  const trail = gw.auditText();
  for (const secret of [GW_SECRET, ...seen]) {
    expect(logs).not.toContain(secret);
    expect(trail).not.toContain(secret);
  }
});

/**
 * routes[].identity (G23): a route narrows the gateway's identity methods and sets its own token
 * requirements. Real peers: oidc-provider issues the tokens, a counting upstream proves what was
 * (not) forwarded, and every refusal has its audit record.
 */
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { clientCredentialsToken, type Issuer, startIssuer } from '../helpers/oidc';

const AUDIENCE = 'https://gateway.test/';
const AGENT_KEY = 'identity-routes-agent-key-0001';

// Any proved identity may call; `input.agent: null` (no credential) may not.
const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no identity"]}

decision := {"allow": true, "reasons": ["identified"]} if input.agent.id
`;

let issuer: Issuer;
let upstream: Upstream;
let gw: TestGateway;
let readToken: string;
let writeToken: string;

beforeAll(async () => {
  issuer = await startIssuer({ audiences: [AUDIENCE] });
  upstream = await startUpstream();
  gw = await startTestGateway({
    yaml: `
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
    audience: ${AUDIENCE}
routes:
  - name: keys
    prefix: /keys/
    upstream: ${upstream.url}/
    identity: { methods: [api_key] }
  - name: tokens
    prefix: /tokens/
    upstream: ${upstream.url}/
    identity: { methods: [jwt], required: true, required_scopes: [tickets:write] }
  - name: open
    prefix: /open/
    upstream: ${upstream.url}/
`,
    policies: { 'p.rego': POLICY },
  });
  readToken = await clientCredentialsToken(issuer, { resource: AUDIENCE, scope: 'tickets:read' });
  writeToken = await clientCredentialsToken(issuer, { resource: AUDIENCE, scope: 'tickets:read tickets:write' });
}, 30_000);

afterAll(async () => {
  issuer?.child.kill('SIGKILL');
  await gw?.close();
  await upstream?.close();
});

function call(target: string, bearer?: string, authorization = bearer ? `Bearer ${bearer}` : undefined): Promise<Response> {
  return fetch(`${gw.gateway.url}${target}`, { headers: authorization ? { authorization } : {} });
}

/** The call is refused with this status and code, has its deny record, and reached no upstream. */
async function expectRefused(target: string, bearer: string | undefined, status: number, code: string): Promise<Response> {
  const before = upstream.received.length;
  const res = await call(target, bearer);
  expect(res.status).toBe(status);
  expect(res.headers.get('x-portcullis-error')).toBe(code);
  const id = res.headers.get('x-portcullis-decision-id');
  await gw.waitForAudit((r) => r.type === 'decision' && r.decision_id === id && r.decision === 'deny' && r.code === code);
  expect(upstream.received.length).toBe(before);
  return res;
}

test('G23: a route taking agent keys only refuses a valid token as an unknown agent, with an invalid_token challenge', async () => {
  expect((await call('/keys/a', AGENT_KEY)).status).toBe(200);
  const res = await expectRefused('/keys/a', writeToken, 401, 'PC_UNKNOWN_AGENT');
  expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="portcullis", error="invalid_token"/);
  // The same token works where tokens are accepted: it was the route that refused it.
  expect((await call('/open/a', writeToken)).status).toBe(200);
});

test("G23: a route taking tokens only, required, with its own scopes: no credential, an agent key, or a token lacking the route's scope are refused", async () => {
  const none = await expectRefused('/tokens/a', undefined, 401, 'PC_TOKEN_REQUIRED');
  expect(none.headers.get('www-authenticate')).toBe('Bearer realm="portcullis", scope="tickets:write"');
  await expectRefused('/tokens/a', AGENT_KEY, 401, 'PC_UNKNOWN_AGENT');
  const scant = await expectRefused('/tokens/a', readToken, 403, 'PC_INSUFFICIENT_SCOPE');
  expect(scant.headers.get('www-authenticate')).toMatch(/error="insufficient_scope", scope="tickets:write"/);
  const ok = await call('/tokens/a', writeToken);
  expect(ok.status).toBe(200);
  expect(upstream.received.at(-1)!.headers.authorization).toBeUndefined();
});

test('G23: a route without identity settings takes every method; with none presented the policy sees input.agent null', async () => {
  expect((await call('/open/a', AGENT_KEY)).status).toBe(200);
  expect((await call('/open/a', readToken)).status).toBe(200);
  await expectRefused('/open/a', undefined, 403, 'PC_POLICY_DENIED');
});

test('G23: a path no route serves is answered 404 whoever asks, and its record names the agent a credential proves', async () => {
  const known = await expectRefused('/nowhere', AGENT_KEY, 404, 'PC_ROUTE_NOT_FOUND');
  const unknown = await expectRefused('/nowhere', 'not-a-key', 404, 'PC_ROUTE_NOT_FOUND');
  expect(await known.text()).not.toContain('key-bot');
  const record = (res: Response) => gw.audit().find((r) => r.type === 'decision' && r.decision_id === res.headers.get('x-portcullis-decision-id'))!;
  expect(record(known)).toMatchObject({ agent: 'key-bot', route: null });
  expect(record(unknown)).toMatchObject({ agent: null, route: null });
});

test('every 401 says how to authenticate (RFC 9110 §15.5.2): a WWW-Authenticate Bearer challenge', async () => {
  for (const [auth, code, error] of [
    ['Basic a2V5OnZhbHVl', 'PC_BAD_AUTHORIZATION', 'invalid_request'],
    ['Bearer not-a-key', 'PC_UNKNOWN_AGENT', 'invalid_token'],
    ['Bearer a.b.c', 'PC_TOKEN_INVALID', 'invalid_token'],
  ] as const) {
    const res = await call('/open/a', undefined, auth);
    expect([res.status, res.headers.get('x-portcullis-error')]).toEqual([401, code]);
    expect(res.headers.get('www-authenticate')).toMatch(new RegExp(`^Bearer realm="portcullis", error="${error}", error_description="[^"]+"$`));
  }
  const none = await call('/tokens/a');
  expect(none.status).toBe(401);
  expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="portcullis"/);
});

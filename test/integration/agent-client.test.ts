/**
 * The example agent client (examples/agent-client/portcullis-client.ts) against a real gateway,
 * real upstream and Rego compiled by the real OPA: allowed calls return the tool's data and a
 * decision id; refusals become PortcullisDenied carrying the policy's reasons and the decision
 * id of the audit record; the upstream sees the route credential and never the agent key.
 */
import { PortcullisClient, PortcullisDenied } from '../../examples/agent-client/portcullis-client';
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const AGENT_KEY = 'agent-client-test-key-0001';
const ROUTE_TOKEN = 'route-token-canary-4c1d9e';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": false, "reasons": sort(deny)} if {
	count(deny) > 0
} else := {"allow": true, "reasons": sort(allow)} if {
	count(allow) > 0
}

allow contains "bot reads items" if {
	input.agent.id == "bot"
	input.request.method == "GET"
	startswith(input.request.path, "/items")
}

allow contains "bot charges" if charge

deny contains "charge over limit" if {
	charge
	input.request.body.amount > 100
}

# Through a helper: \`not is_string(input.request.body.currency)\` inline is undefined, not
# true, when the body has no currency (see examples/quickstart/policies/quickstart.rego).
deny contains "charge needs a currency" if {
	charge
	not has_currency
}

has_currency if is_string(input.request.body.currency)

charge if {
	input.agent.id == "bot"
	input.request.method == "POST"
	input.request.path == "/charges"
}
`;

let upstream: Upstream;
let gw: TestGateway;
let client: PortcullisClient;

beforeAll(async () => {
  // Echoes what it received, except /items/missing: the tool's own 404, to be relayed, not thrown.
  upstream = await startUpstream((req, res, body) => {
    const missing = req.url === '/items/missing';
    const text = JSON.stringify(missing ? { error: 'no such item' } : { method: req.method, url: req.url, body: body.toString('utf8') });
    res.writeHead(missing ? 404 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  gw = await startTestGateway({
    yaml: `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  shop: { type: bearer, env: SHOP_TOKEN }
agents:
  - id: bot
    key_sha256: "${keyHash(AGENT_KEY)}"
routes:
  - name: shop
    prefix: /shop/
    upstream: ${upstream.url}/
    credential: shop
`,
    policies: { 'policy.rego': POLICY },
    env: { SHOP_TOKEN: ROUTE_TOKEN },
  });
  client = new PortcullisClient({ baseUrl: gw.gateway.url, agentKey: AGENT_KEY });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

/** The decision record with this id (written before the answer was sent). */
function decisionRecord(id: string): Record<string, any> | undefined {
  return gw.audit().find((r) => r.type === 'decision' && r.decision_id === id);
}

test('an allowed call returns the tool data and the decision id of its audit record', async () => {
  const r = await client.call<{ method: string; url: string }>('shop', '/items', { query: { tag: ['a', 'b'], limit: 2, skip: undefined } });
  expect(r).toMatchObject({ ok: true, status: 200, data: { method: 'GET', url: '/items?tag=a&tag=b&limit=2' } });
  expect(r.decisionId).toMatch(/\S/);
  expect(decisionRecord(r.decisionId)).toMatchObject({ decision: 'allow', agent: 'bot', route: 'shop', reasons: ['bot reads items'], credential: 'shop' });
});

test('the body is sent as JSON, so the policy can judge it, and forwarded as sent', async () => {
  const r = await client.call<{ body: string }>('shop', '/charges', { method: 'POST', body: { amount: 40, currency: 'EUR' } });
  expect(r.status).toBe(200);
  expect(JSON.parse(r.data.body)).toEqual({ amount: 40, currency: 'EUR' });
  expect(upstream.received.at(-1)?.headers['content-type']).toBe('application/json');
});

test('a policy deny throws PortcullisDenied with the policy reasons and the audited decision id', async () => {
  const before = upstream.received.length;
  const err = await client.call('shop', '/charges', { method: 'POST', body: { amount: 500 } }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PortcullisDenied);
  const denied = err as PortcullisDenied;
  expect(denied).toMatchObject({ code: 'PC_POLICY_DENIED', status: 403, reasons: ['charge needs a currency', 'charge over limit'] });
  expect(denied.retryable).toBe(false);
  expect(decisionRecord(denied.decisionId)).toMatchObject({ decision: 'deny', code: 'PC_POLICY_DENIED', reasons: denied.reasons, credential: null });
  expect(denied.forModel()).toContain('charge over limit');
  expect(denied.forModel()).toContain(denied.decisionId);
  expect(upstream.received.length).toBe(before); // nothing was forwarded
});

test('refusals before the policy (unknown agent key) are PortcullisDenied too', async () => {
  const stranger = new PortcullisClient({ baseUrl: gw.gateway.url, agentKey: 'not-a-configured-key' });
  const err = (await stranger.call('shop', '/items').catch((e: unknown) => e)) as PortcullisDenied;
  expect(err).toBeInstanceOf(PortcullisDenied);
  expect(err).toMatchObject({ code: 'PC_UNKNOWN_AGENT', status: 401 });
  expect(decisionRecord(err.decisionId)).toMatchObject({ decision: 'deny', code: 'PC_UNKNOWN_AGENT', agent: null });
});

test("the tool's own error is returned, not thrown", async () => {
  const r = await client.call('shop', '/items/missing');
  expect(r).toMatchObject({ ok: false, status: 404, data: { error: 'no such item' } });
  expect(decisionRecord(r.decisionId)?.decision).toBe('allow');
});

test('paths the URL parser would rewrite are refused before anything is sent', async () => {
  // Decision records only: the outcome record of the previous call may still be landing.
  const decisions = () => gw.audit().filter((r) => r.type === 'decision').length;
  const before = decisions();
  for (const bad of ['/items/../admin', '/items/%2E%2E/admin', '/items?x=1', '/items\\x']) {
    await expect(client.call('shop', bad)).rejects.toThrow(TypeError);
  }
  expect(decisions()).toBe(before);
});

test('the upstream received the route credential on every call and never the agent key', () => {
  expect(upstream.received.length).toBeGreaterThan(0);
  for (const r of upstream.received) {
    expect(r.headers.authorization).toBe(`Bearer ${ROUTE_TOKEN}`);
    expect(JSON.stringify(r.headers) + r.url + r.body.toString('utf8')).not.toContain(AGENT_KEY);
  }
  expect(gw.auditText()).not.toContain(AGENT_KEY);
  expect(JSON.stringify(client)).not.toContain(AGENT_KEY);
});

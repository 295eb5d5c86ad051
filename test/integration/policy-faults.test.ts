/**
 * The policy's Wasm failing at run time (fault matrix, G6 G16): a policy that runs the Wasm
 * instance out of memory traps inside opa-wasm. The call is denied with PC_POLICY_ERROR and a
 * record, nothing is forwarded, and the same instance decides the next call correctly.
 */
import { rawRequest, oneRouteYaml, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'agent-key-policy-faults-01';
const auth = { authorization: `Bearer ${KEY}` };

// /oom builds an array far beyond the engine's 256 MiB Wasm memory limit.
const POLICY = `package portcullis
default decision := {"allow": false, "reasons": ["no"]}
decision := {"allow": true, "reasons": ["ok"]} if input.request.path == "/ok"
decision := {"allow": true, "reasons": ["huge"]} if {
	input.request.path == "/oom"
	count(numbers.range(1, 200000000)) > 0
}
`;

let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  gw = await startTestGateway({ yaml: oneRouteYaml({ upstream: upstream.url, agentKey: KEY }), policies: { 'policy.rego': POLICY } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

test('G6 G16: a policy that runs the Wasm memory out denies with PC_POLICY_ERROR and a record, and the next call is decided normally', async () => {
  const before = upstream.received.length;
  const r = await rawRequest(gw.gateway.url, { path: '/up/oom', headers: auth });
  expect(r.status).toBe(403);
  const body = JSON.parse(r.body);
  expect(body.error.code).toBe('PC_POLICY_ERROR');
  const record = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === body.error.decision_id);
  expect(record).toMatchObject({ decision: 'deny', code: 'PC_POLICY_ERROR' });
  expect(record.reasons.join(' ')).toMatch(/evaluation failed/);
  expect(upstream.received.length).toBe(before);
  expect(gw.logs()).toContain('policy failed to decide; denying');

  const ok = await rawRequest(gw.gateway.url, { path: '/up/ok', headers: auth });
  expect(ok.status).toBe(200);
  const denied = await rawRequest(gw.gateway.url, { path: '/up/other', headers: auth });
  expect(JSON.parse(denied.body).error.code).toBe('PC_POLICY_DENIED');
}, 30_000);

/**
 * What goes into a record, end to end through a real gateway: values that break naive log
 * tooling stay on one escaped line; a multi-megabyte body is kept as size and digest; a very
 * long path is cut, flagged and digested; secrets the agent or the route carries never appear;
 * the start record names the config digest and the signing key.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { verifyTrail } from '../../src/audit/offline/verify';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const AGENT_KEY = 'agent-key-canary-31f0c2';
const ROUTE_SECRET = 'route-secret-canary-9e77ab';
const ARG_CANARY = 'argument-canary-5a1d44';
const auth = { authorization: `Bearer ${AGENT_KEY}` };
const HOSTILE = 'line1\nline2\u2028sep\u2029para\u001b[31mred\u001b[0m\r\u0000end';
let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  gw = await startTestGateway({
    yaml:
      `listen: 127.0.0.1:0\nadmin: { enabled: false }\npolicy: { path: ./policies, watch: false }\naudit: { path: ./audit }\n` +
      `limits: { max_body_bytes: 8388608 }\n` +
      `agents:\n  - id: bot\n    key_sha256: "${keyHash(AGENT_KEY)}"\n` +
      `credentials:\n  svc: { type: header, header: x-api-key, env: ROUTE_SECRET }\n` +
      `routes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/\n    credential: svc\n` +
      `  - name: kept\n    prefix: /kept/\n    upstream: ${upstream.url}/\n    audit_body: true\n`,
    env: { ROUTE_SECRET },
    policies: {
      'p.rego': `package portcullis\n\ndecision := {"allow": input.request.method != "DELETE", "reasons": [${JSON.stringify(HOSTILE)}], "mask": ["/card"]}\n`,
    },
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

test('newlines, U+2028/U+2029, ANSI escapes and NUL in values stay escaped on one line', async () => {
  const r = await rawRequest(gw.gateway.url, { path: '/up/x', method: 'DELETE', headers: auth });
  expect(r.status).toBe(403);
  const text = gw.auditText();
  for (const raw of ['\u2028', '\u2029', '\u001b', '\r', '\u0000']) expect(text).not.toContain(raw);
  const lines = text.split('\n').filter(Boolean);
  const denied = lines.map((l) => JSON.parse(l)).find((d) => d.type === 'decision' && d.decision === 'deny');
  expect(denied.reasons).toEqual([HOSTILE]);
});

test('a multi-megabyte body is recorded as its size and SHA-256, never its content', async () => {
  const body = JSON.stringify({ note: ARG_CANARY, blob: 'b'.repeat(3 * 1024 * 1024) });
  const r = await rawRequest(gw.gateway.url, { path: '/up/big', method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
  expect(r.status).toBe(200);
  const id = r.headers['x-portcullis-decision-id'];
  const rec = gw.audit().find((x) => x.type === 'decision' && x.decision_id === id)!;
  expect(rec.body).toEqual({ bytes: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex') });
  const longest = Math.max(
    ...gw
      .auditText()
      .split('\n')
      .map((l) => l.length),
  );
  expect(longest).toBeLessThan(16 * 1024);
});

test('a path beyond 4096 characters is cut, flagged, and its full digest kept', async () => {
  const p = `/up/long?q=${'z'.repeat(9000)}`;
  const r = await rawRequest(gw.gateway.url, { path: p, headers: auth });
  expect(r.status).toBe(200);
  const rec = gw.audit().find((x) => x.type === 'decision' && x.decision_id === r.headers['x-portcullis-decision-id'])!;
  expect(rec.path).toHaveLength(4096);
  expect(rec.truncated).toEqual(['path']);
  // The record's path is what the agent asked for, route prefix included.
  expect(rec.path_sha256).toBe(createHash('sha256').update(p).digest('hex'));
});

test('G2: the agent key, the route secret and secrets in arguments and headers never reach the trail', async () => {
  await rawRequest(gw.gateway.url, {
    path: '/up/h',
    method: 'POST',
    headers: { ...auth, 'x-api-key': ARG_CANARY, cookie: `s=${ARG_CANARY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ password: ARG_CANARY }),
  });
  const text = gw.auditText();
  expect(text.length).toBeGreaterThan(0);
  for (const secret of [AGENT_KEY, ROUTE_SECRET, ARG_CANARY]) expect(text).not.toContain(secret);
  // The upstream did get the route's credential: the secret was in play, just not logged.
  expect(upstream.received.some((q) => q.headers['x-api-key'] === ROUTE_SECRET)).toBe(true);
});

test('the start record names the config digest and the checkpoint key; the trail verifies', async () => {
  const start = gw.audit().find((x) => x.type === 'gateway_start')!;
  expect(start.config_sha256).toBe(
    createHash('sha256')
      .update(readFileSync(`${gw.dir}/portcullis.yaml`))
      .digest('hex'),
  );
  const key = gw.audit().find((x) => x.type === 'signing_key')!;
  expect(start.checkpoint_key_id).toBe(key.key_id);
  expect(gw.logs()).toContain(key.public_key);
  expect(verifyTrail(gw.auditDir).problems).toEqual([]);
});

test('the decision record keeps the policy input, less the body, and never the agent key or the route secret', async () => {
  const r = await rawRequest(gw.gateway.url, {
    path: '/up/items?b=2&a=1',
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', 'x-trace': 't1' },
    body: JSON.stringify({ note: ARG_CANARY }),
  });
  expect(r.status).toBe(200);
  const rec = gw.audit().find((x) => x.type === 'decision' && x.decision_id === r.headers['x-portcullis-decision-id'])!;
  expect(rec.input).toMatchObject({
    route: 'up',
    agent: { id: 'bot', method: 'api_key' },
    request: { method: 'POST', path: '/items', query: { a: ['1'], b: ['2'] }, headers: { 'content-type': 'application/json', 'x-trace': 't1' } },
    time: rec.time,
  });
  expect(rec.input.request.body).toBeUndefined();
  expect(rec.input.request.headers.authorization).toBeUndefined();
  expect(rec.input_omitted).toEqual(['/request/body']);
  const line = JSON.stringify(rec);
  for (const secret of [AGENT_KEY, ROUTE_SECRET, ARG_CANARY]) expect(line).not.toContain(secret);
});

test('a route with audit_body keeps the JSON body in the input, masked by the policy', async () => {
  const r = await rawRequest(gw.gateway.url, {
    path: '/kept/items',
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ note: 'hello', card: ARG_CANARY }),
  });
  expect(r.status).toBe(200);
  const rec = gw.audit().find((x) => x.type === 'decision' && x.decision_id === r.headers['x-portcullis-decision-id'])!;
  expect(rec.input.request.body).toEqual({ note: 'hello', card: '[masked]' });
  expect(rec.input_omitted).toEqual(['/request/body/card']);
  expect(JSON.stringify(rec)).not.toContain(ARG_CANARY);
});

test('a call refused before the policy records no input', async () => {
  const r = await rawRequest(gw.gateway.url, { path: '/up/x', headers: { authorization: 'Bearer not-a-key' } });
  expect(r.status).toBe(401);
  const rec = gw.audit().find((x) => x.type === 'decision' && x.decision_id === r.headers['x-portcullis-decision-id'])!;
  expect(rec.input).toBeUndefined();
});

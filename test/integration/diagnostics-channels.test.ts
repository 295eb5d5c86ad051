/**
 * Diagnostics channels: a subscriber sees each call move through both pipeline halves, stage by
 * stage and in the order the arrays give, sees which stage refused a call and with which code,
 * and sees how each call ended — and never a credential (G2).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { PIPELINE } from '../../src/proxy/pipeline';
import { RESPONSE_PIPELINE } from '../../src/proxy/response/response-pipeline';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'agent-key-channels-01';
const TOKEN = 'channel-canary-token-3f9a1c';
const auth = { authorization: `Bearer ${KEY}` };
const seen: { channel: string; message: Record<string, unknown> }[] = [];
const listeners = ['portcullis:stage', 'portcullis:stage:refused', 'portcullis:call:end'].map(
  (name) => [name, (message: unknown) => seen.push({ channel: name, message: message as Record<string, unknown> })] as const,
);

let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  gw = await startTestGateway({
    yaml: `listen: 127.0.0.1:0\nadmin: { enabled: false }\npolicy: { path: ./policies, watch: false }\naudit: { path: ./audit }\ncredentials:\n  api: { type: bearer, env: CH_TOKEN }\nagents:\n  - { id: bot, key_sha256: "${keyHash(KEY)}" }\nroutes:\n  - { name: api, prefix: /api/, upstream: "${upstream.url}/", credential: api }\n`,
    policies: { 'p.rego': 'package portcullis\ndecision := {"allow": input.request.method == "GET", "reasons": ["gets only"]}\n' },
    env: { CH_TOKEN: TOKEN },
  });
  for (const [name, fn] of listeners) subscribe(name, fn);
}, 60_000);

afterAll(async () => {
  for (const [name, fn] of listeners) unsubscribe(name, fn);
  await gw?.close();
  await upstream?.close();
});

const of = (id: string, channel: string) => seen.filter((s) => s.channel === channel && s.message.decisionId === id).map((s) => s.message);

test('each stage of both halves is published in order; the call end says how it ended; no credential in any message', async () => {
  const r = await rawRequest(gw.gateway.url, { path: '/api/items', headers: auth });
  expect(r.status).toBe(200);
  const id = String(r.headers['x-portcullis-decision-id']);
  await new Promise((res) => setTimeout(res, 50));
  const stages = of(id, 'portcullis:stage');
  expect(stages.filter((m) => m.half === 'response').map((m) => m.stage)).toEqual(RESPONSE_PIPELINE.map((s) => s.name));
  expect(stages.filter((m) => m.half === 'request').map((m) => m.stage)).toEqual(PIPELINE.map((s) => s.name));
  for (const m of stages) expect(typeof m.durationMs).toBe('number');
  expect(of(id, 'portcullis:call:end')).toEqual([{ decisionId: id, route: 'api', agent: 'bot', status: 200, code: null }]);
  expect(JSON.stringify(seen)).not.toContain(TOKEN);
  // The upstream echoed the credential; the masker hid it, and no message carried it.
  expect(r.body).not.toContain(TOKEN);
});

test('a refused call names the stage and the code', async () => {
  const r = await rawRequest(gw.gateway.url, { method: 'DELETE', path: '/api/items', headers: auth });
  expect(r.status).toBe(403);
  const id = String(r.headers['x-portcullis-decision-id']);
  expect(of(id, 'portcullis:stage:refused')).toEqual([{ decisionId: id, half: 'request', stage: 'decide', code: 'PC_POLICY_DENIED' }]);
  expect(of(id, 'portcullis:stage').map((m) => m.stage)).toEqual(['admit', 'check-edge', 'route', 'identify', 'read-body', 'decode']);
  expect(of(id, 'portcullis:call:end')).toEqual([{ decisionId: id, route: 'api', agent: 'bot', status: 403, code: 'PC_POLICY_DENIED' }]);
});

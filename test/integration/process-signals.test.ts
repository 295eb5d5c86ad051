/**
 * The gateway process under signals, with calls in flight against a slow upstream:
 * - SIGTERM (G15): every call the upstream received is answered with its result, a new
 *   connection is refused at once, and the trail ends with gateway_stop (then the closing
 *   checkpoint); the process exits 0 and the trail verifies.
 * - SIGSTOP then SIGCONT (G16, G3): clients waiting on a paused gateway see their own timeouts,
 *   never a wrong answer (each 2xx is the upstream's answer to that very call), every forwarded
 *   call has its allow record, and the trail verifies.
 */
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { oneRouteYaml, startUpstream, type Upstream } from '../helpers/harness';
import { callOnce, type CallResult, killGatewaysAndRemove, scratchDir, spawnGateway, trailRecords, verifyCli } from '../helpers/gateway-process';

const KEY = 'signals-agent-key';
const base = scratchDir('signals');
const UPSTREAM_DELAY_MS = 400;
let upstream: Upstream;

beforeAll(async () => {
  // A slow upstream keeps calls in flight; it echoes the url it was asked for.
  upstream = await startUpstream((req, res) => {
    setTimeout(() => {
      const text = JSON.stringify({ url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    }, UPSTREAM_DELAY_MS);
  });
});

afterAll(async () => {
  await upstream?.close();
  killGatewaysAndRemove(base);
});

function configFor(name: string): { file: string; auditDir: string } {
  const file = path.join(base, `${name}.yaml`);
  writeFileSync(file, `${oneRouteYaml({ upstream: upstream.url, agentKey: KEY, audit: `./audit-${name}` })}\nlog: { level: info }\n`);
  return { file, auditDir: path.join(base, `audit-${name}`) };
}

interface Sent extends CallResult {
  readonly path: string;
}

/** `clients` loops of calls until stop(); each call's path is unique. */
function load(url: string, clients: number, timeoutMs: number, tag: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const sent: Sent[] = [];
  let stopped = false;
  let n = 0;
  const loops = Array.from({ length: clients }, async () => {
    while (!stopped) {
      const p = `/up/${tag}-${n++}`;
      const r = await callOnce(url, p, KEY, { agent, timeoutMs });
      sent.push({ ...r, path: p });
      if (r.status === null && /ECONNREFUSED/.test(r.error ?? '')) await new Promise((res) => setTimeout(res, 20));
    }
  });
  return {
    sent,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

/** A 2xx is right only if it is the upstream's answer to that call. */
function wrongAnswers(sent: Sent[]): Sent[] {
  return sent.filter((s) => s.status === 200 && (JSON.parse(s.body) as { url: string }).url !== s.path.slice(3));
}

test('G15: SIGTERM under load: in-flight calls finish, a new connection is refused, the trail ends with gateway_stop', async () => {
  const { file, auditDir } = configFor('term');
  const gw = await spawnGateway(file);
  const running = load(gw.url, 12, 10_000, 'term');
  await new Promise((r) => setTimeout(r, UPSTREAM_DELAY_MS * 2 + 100));
  const receivedBefore = upstream.received.length;
  process.kill(gw.pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 50));
  const fresh = await callOnce(gw.url, '/up/after-term', KEY, { timeoutMs: 2000 });
  const { code } = await gw.exited;
  await running.stop();
  expect(code).toBe(0);
  expect(receivedBefore).toBeGreaterThan(0);
  // No new call accepted: the listener is closed (or, on a kept-alive socket, 503 PC_SHUTTING_DOWN).
  expect(fresh.status === null ? fresh.error : JSON.parse(fresh.body).error.code).toMatch(/ECONNREFUSED|PC_SHUTTING_DOWN/);
  expect(upstream.received.some((x) => x.url === '/after-term')).toBe(false);

  const records = trailRecords(auditDir);
  const byId = new Map(records.filter((r) => r.type === 'decision').map((r) => [r.decision_id, r]));
  const outcomes = new Set(records.filter((r) => r.type === 'outcome').map((r) => r.decision_id));
  // Every call the upstream received was answered to its client with the upstream's answer.
  const answered = new Map(running.sent.filter((s) => s.status === 200).map((s) => [s.path.slice(3), s]));
  const term = upstream.received.filter((x) => x.url.startsWith('/term-'));
  expect(term.length).toBeGreaterThan(0);
  expect(term.filter((x) => !answered.has(x.url)).map((x) => x.url)).toEqual([]);
  expect(wrongAnswers(running.sent)).toEqual([]);
  for (const s of running.sent) {
    if (s.status === 200)
      expect({ id: s.decisionId, decision: byId.get(s.decisionId!)?.decision, outcome: outcomes.has(s.decisionId!) }).toEqual({
        id: s.decisionId,
        decision: 'allow',
        outcome: true,
      });
    else if (s.status !== null)
      expect({ status: s.status, code: JSON.parse(s.body).error.code, recorded: byId.has(s.decisionId!) }).toEqual({
        status: 503,
        code: 'PC_SHUTTING_DOWN',
        recorded: true,
      });
  }
  // The trail ends with gateway_stop and the checkpoint that signs it.
  expect(records.slice(-2).map((r) => r.type)).toEqual(['gateway_stop', 'checkpoint']);
  const v = await verifyCli(auditDir);
  expect(v.report.problems).toEqual([]);
  expect(v.code).toBe(0);
}, 60_000);

test('G16, G3: SIGSTOP then SIGCONT with calls in flight: clients see timeouts, never a wrong answer; the trail stays consistent', async () => {
  const { file, auditDir } = configFor('stop');
  const gw = await spawnGateway(file);
  const CLIENT_TIMEOUT_MS = 1000;
  const running = load(gw.url, 8, CLIENT_TIMEOUT_MS, 'stop');
  await new Promise((r) => setTimeout(r, UPSTREAM_DELAY_MS * 2));
  process.kill(gw.pid, 'SIGSTOP');
  const stoppedAt = running.sent.length;
  await new Promise((r) => setTimeout(r, CLIENT_TIMEOUT_MS * 2));
  const whileStopped = running.sent.slice(stoppedAt);
  process.kill(gw.pid, 'SIGCONT');
  await new Promise((r) => setTimeout(r, UPSTREAM_DELAY_MS * 3));
  await running.stop();
  const after = await callOnce(gw.url, '/up/after-cont', KEY);
  process.kill(gw.pid, 'SIGTERM');
  expect((await gw.exited).code).toBe(0);

  // While paused, calls ended in the client's own timeout (no answer at all), not an answer.
  expect(whileStopped.length).toBeGreaterThan(0);
  for (const s of whileStopped) expect({ status: s.status, error: s.error }).toEqual({ status: null, error: 'client timeout' });
  expect(after.status).toBe(200);
  expect(wrongAnswers(running.sent)).toEqual([]);
  const records = trailRecords(auditDir);
  const allowed = new Set(records.filter((r) => r.type === 'decision' && r.decision === 'allow').map((r) => r.decision_id));
  for (const s of running.sent.filter((x) => x.status === 200)) expect(allowed.has(s.decisionId!)).toBe(true);
  // Every call the paused gateway forwarded after it resumed had its allow record first.
  const forwarded = upstream.received.filter((x) => x.url.startsWith('/stop-'));
  expect(forwarded.filter((x) => !allowed.has(String(x.headers['x-portcullis-decision-id'])))).toEqual([]);
  const v = await verifyCli(auditDir);
  expect(v.report.problems).toEqual([]);
  expect(v.code).toBe(0);
}, 60_000);

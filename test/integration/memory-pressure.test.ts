/**
 * Memory pressure (fault matrix, G16, G4): a gateway process with a small V8 heap
 * (--max-old-space-size=128) is loaded with calls whose large JSON bodies it must parse and hold
 * while a slow upstream keeps them in flight. Before the process could die, new calls are
 * refused with 503 PC_OVERLOADED (each audited), /readyz says why, and once the held calls end
 * the gateway takes calls again. The process never dies.
 */
import type http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { oneRouteYaml, startUpstream, type Upstream } from '../helpers/harness';
import { callOnce, type CallResult, killGatewaysAndRemove, scratchDir, spawnGateway, trailRecords } from '../helpers/gateway-process';

const KEY = 'memory-agent-key';
const base = scratchDir('memory');
/** ~900 KB of JSON holding 100 000 small objects: several MB once parsed. */
const BODY = `[${Array.from({ length: 100_000 }, (_, i) => `{"a":${i % 10}}`).join(',')}]`;
let upstream: Upstream;
const held: http.ServerResponse[] = [];

beforeAll(async () => {
  // The upstream holds every POST until the test releases it, and answers GETs at once.
  upstream = await startUpstream((req, res) => (req.method === 'POST' ? held.push(res) : res.end('{}')));
});

afterAll(async () => {
  for (const r of held) r.destroy();
  await upstream?.close();
  killGatewaysAndRemove(base);
});

function release(): void {
  for (const r of held.splice(0)) r.end('{}');
}

test('G16 G4: under memory pressure new calls are refused with 503 PC_OVERLOADED and audited, before the process dies; it recovers', async () => {
  const file = path.join(base, 'gw.yaml');
  writeFileSync(file, `${oneRouteYaml({ upstream: upstream.url, agentKey: KEY, admin: true, audit: './audit' })}\nlog: { level: info }\n`);
  const gw = await spawnGateway(file, { nodeArgs: ['--max-old-space-size=128'] });
  let died = false;
  void gw.exited.then(() => (died = true));

  // Pressure may last only milliseconds (the guard collects garbage and resumes as soon as use
  // falls back), so readiness is watched throughout rather than asked once after the refusal.
  const readiness: { status: number; problems: string[] }[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const r = await fetch(`${gw.adminUrl}/readyz`).catch(() => null);
      if (r) readiness.push({ status: r.status, problems: ((await r.json().catch(() => ({}))) as { problems?: string[] }).problems ?? [] });
      await new Promise((res) => setTimeout(res, 20));
    }
  })();

  const inFlight: Promise<CallResult>[] = [];
  let refused: CallResult | null = null;
  for (let i = 0; i < 80 && !refused && !died; i++) {
    const call = callOnce(gw.url, `/up/big-${i}`, KEY, { body: BODY, timeoutMs: 60_000 });
    inFlight.push(call);
    // A refusal comes back at once; an admitted call waits on the upstream.
    const first = await Promise.race([call, new Promise<null>((r) => setTimeout(() => r(null), 400))]);
    if (first && first.status === 503) refused = first;
  }
  if (died)
    throw new Error(
      `the gateway died after ${inFlight.length} calls: ${gw
        .stdout()
        .split('\n')
        .filter((l) => /memory|error/i.test(l))
        .slice(-5)
        .join('\n')} ${gw.stderr().slice(0, 1500)}`,
    );
  expect(refused).not.toBeNull();
  expect(JSON.parse(refused!.body).error).toMatchObject({ code: 'PC_OVERLOADED' });
  await new Promise((res) => setTimeout(res, 500));
  watching = false;
  await watcher;
  expect(readiness.find((r) => r.status === 503)).toMatchObject({ problems: expect.arrayContaining(['memory pressure']) });

  // The held calls end; memory comes back and calls are taken again.
  release();
  await Promise.all(inFlight);
  let after: CallResult | null = null;
  for (let i = 0; i < 100 && after?.status !== 200; i++) {
    if (after) await new Promise((res) => setTimeout(res, 200));
    after = await callOnce(gw.url, `/up/after-${i}`, KEY, { timeoutMs: 5000 });
  }
  if (died) throw new Error(`the gateway died after the held calls were released: ${gw.stderr().slice(0, 1500)}`);
  expect(after?.status).toBe(200);
  gw.child.kill('SIGTERM');
  await gw.exited;
  const records = trailRecords(path.join(base, 'audit'));
  expect(records.find((x) => x.decision_id === refused!.decisionId)).toMatchObject({ type: 'decision', decision: 'deny', code: 'PC_OVERLOADED', status: 503 });
  expect(gw.stdout()).toContain('memory is short; refusing new calls until it recovers');
}, 90_000);

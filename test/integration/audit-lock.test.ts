/**
 * G14 with real gateway processes: the audit lock is the kernel's, so it holds across PID
 * namespaces (two gateways that are both pid 1), is free the moment its holder dies even while
 * that holder is an unreaped zombie that `kill(pid, 0)` still calls alive, and a gateway that
 * finds a lock naming its own pid from an earlier life takes it over and says so.
 */
import { execFileSync } from 'node:child_process';
import { readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { oneRouteYaml, startUpstream, type Upstream } from '../helpers/harness';
import { callOnce, killGatewaysAndRemove, processState, scratchDir, spawnGateway, trailRecords, verifyCli } from '../helpers/gateway-process';

const KEY = 'lock-agent-key';
const base = scratchDir('lock');
const auditDir = path.join(base, 'audit');
const configFile = path.join(base, 'portcullis.yaml');
let upstream: Upstream;

/** unshare(1) with a new PID namespace (and /proc for it); null when this machine cannot. */
const UNSHARE: string[] | null = (() => {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'];
  } catch {
    return null;
  }
})();
const inNamespaces = UNSHARE ? test : test.skip;
if (!UNSHARE)
  console.warn('audit-lock: unshare --pid --fork --mount-proc is not available here (needs root or user namespaces): the PID-namespace test is skipped');

beforeAll(async () => {
  upstream = await startUpstream();
  writeFileSync(configFile, `${oneRouteYaml({ upstream: upstream.url, agentKey: KEY })}\nlog: { level: info }\n`);
});

afterAll(async () => {
  await upstream?.close();
  killGatewaysAndRemove(base);
});

/** Sends `n` calls and returns the decision ids of the 2xx answers. */
async function acknowledged(url: string, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await callOnce(url, `/up/${tag}-${i}`, KEY);
    if (r.status === 200 && r.decisionId) ids.push(r.decisionId);
  }
  return ids;
}

inNamespaces(
  'G14: two gateways in different PID namespaces, both pid 1, on one directory: the second refuses naming the first; after kill -9 a third (pid 1 again) takes over and records it',
  async () => {
    rmSync(auditDir, { recursive: true, force: true });
    const a = await spawnGateway(configFile, { wrapper: UNSHARE! });
    const aNs = readlinkSync(`/proc/${a.pid}/ns/pid`);
    expect(readlinkSync('/proc/self/ns/pid')).not.toBe(aNs);
    const seen = await acknowledged(a.url, 5, 'a');
    expect(seen).toHaveLength(5);
    expect(trailRecords(auditDir).find((r) => r.type === 'gateway_start')).toMatchObject({ pid: 1 });

    // The old pid check would call the lock stale here: it names pid 1, and this process is pid 1 too.
    const b = spawnGateway(configFile, { wrapper: UNSHARE! });
    const refused = (await b.then(
      () => null,
      (e: { code: number | null; stderr: string }) => e,
    ))!;
    expect(refused).not.toBeNull();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`locked by another writer: Portcullis pid 1 in another PID namespace (${aNs}) on this machine, writer epoch 1`);
    expect(refused.stderr).toContain('stop that gateway first, or give this one its own audit.path');
    // A still serves; nothing of B is in the trail.
    seen.push(...(await acknowledged(a.url, 5, 'a2')));
    expect(trailRecords(auditDir).filter((r) => r.type === 'gateway_start')).toHaveLength(1);

    process.kill(a.pid, 'SIGKILL');
    const c = await spawnGateway(configFile, { wrapper: UNSHARE! });
    seen.push(...(await acknowledged(c.url, 5, 'c')));
    process.kill(c.pid, 'SIGTERM');
    expect((await c.exited).code).toBe(0);

    const records = trailRecords(auditDir);
    const takeover = records.filter((r) => r.type === 'writer_takeover');
    expect(takeover).toEqual([
      expect.objectContaining({ previous: expect.objectContaining({ pid: 1, pid_ns: aNs, epoch: 1, state: 'held' }), epoch: 2, pid: 1 }),
    ]);
    // One writer at a time: A's records, then C's, each block opened by its own gateway_start.
    const starts = records.map((r, i) => (r.type === 'gateway_start' ? i : -1)).filter((i) => i >= 0);
    expect(starts).toHaveLength(2);
    expect(records.indexOf(takeover[0])).toBeLessThan(starts[1]);
    const ids = new Set(records.filter((r) => r.type === 'decision').map((r) => r.decision_id));
    expect(seen.filter((id) => !ids.has(id))).toEqual([]);
    const v = await verifyCli(auditDir);
    expect(v.report.problems).toEqual([]);
    expect(v.code).toBe(0);
  },
  60_000,
);

test('G14: a holder killed with -9 but left a zombie (its parent never reaps it, so kill(pid, 0) calls it alive) does not block the restart', async () => {
  rmSync(auditDir, { recursive: true, force: true });
  // The shell execs into a sleep that never waits for its child: the gateway stays a zombie.
  const a = await spawnGateway(configFile, { shell: '$GATEWAY & exec sleep 60' });
  expect(await acknowledged(a.url, 3, 'z')).toHaveLength(3);
  process.kill(a.pid, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (processState(a.pid) !== 'Z' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(processState(a.pid)).toBe('Z');
  expect(() => process.kill(a.pid, 0)).not.toThrow();

  const began = performance.now();
  const b = await spawnGateway(configFile);
  expect(await acknowledged(b.url, 1, 'after')).toHaveLength(1);
  const servedAfterMs = performance.now() - began;
  expect(processState(a.pid)).toBe('Z');
  b.child.kill('SIGTERM');
  await b.exited;
  a.child.kill('SIGKILL');
  const takeover = trailRecords(auditDir).filter((r) => r.type === 'writer_takeover');
  expect(takeover).toEqual([expect.objectContaining({ previous: expect.objectContaining({ pid: a.pid, state: 'held' }), epoch: 2, waited_ms: 0 })]);
  expect(servedAfterMs).toBeLessThan(10_000);
  expect((await verifyCli(auditDir)).code).toBe(0);
}, 60_000);

/**
 * `npm run bench`: measures Portcullis side by side with the upstream alone ("direct") and with
 * a bare keep-alive http-proxy, in one run, and checks the two targets: at least the
 * bare proxy's throughput, and at most 1 ms added to p50 over direct.
 *
 * Each target and the load generator run in their own processes (bench/child.ts). On a machine
 * with two or more CPUs the load generator is pinned to CPU 0 and the upstream and the proxy
 * under test share CPU 1, so what is measured is the proxy's cost, not a fight with autocannon
 * for a core. Before any load, every target is checked by hand: 200s for the workload's
 * requests, the credential injected by Portcullis only, and Portcullis denying what the policy
 * forbids. During the runs, any error or non-2xx answer, or a target dying, stops the benchmark
 * with a non-zero exit and no results file.
 *
 * Settings (environment):
 *   BENCH_DURATION         seconds measured per run (5)
 *   BENCH_WARMUP           seconds of unmeasured load before each run (1)
 *   BENCH_PRIME            seconds of each workload every target gets once at start-up, so the
 *                          first runs do not pay for JIT compilation (1)
 *   BENCH_CONNECTIONS      connection counts (1,16,64): 16 and 64 measure capacity, 1 the
 *                          latency a proxy adds when nothing queues
 *   BENCH_RELAXED=0        skip the gateway with relaxed audit durability
 *   BENCH_PIN=0            do not pin processes to CPUs
 *   BENCH_CPU_PROF=1       write V8 CPU profiles of the gateways to bench/results/profiles/
 *   BENCH_KEEP=1           keep the work directory (configs, audit trails)
 *   BENCH_MAX_FOREIGN_CPU  cores other processes may use during a run before it is repeated (0.1)
 *   BENCH_RETRIES          how many times a disturbed run is repeated (2)
 */
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canPin, startChild, type Child } from './child';
import { cpuShareBetween, processCpuSeconds, sampleCpu } from './cpu-usage';
import { ROUTE_PREFIX, type StatsReply } from './gateway';
import type { LoadJob, LoadReply, LoadResult } from './load';
import { compare, describeEnvironment, failuresOf, formatComparisons, formatRows, formatVerdicts, judge, TARGETS, type Row, type TargetName } from './report';
import { listSetting, numberSetting } from './settings';
import { SAW_CREDENTIAL_HEADER } from './upstream';

const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
const AGENT_KEY = 'bench-agent-key-not-a-secret';
const UPSTREAM_TOKEN = 'bench-upstream-token-not-a-secret';
const PATH = `${ROUTE_PREFIX}items`;
const TMPFS_MAGIC = 0x01021994;

/** A request shape the benchmark sends. */
interface Workload {
  readonly name: string;
  readonly method: 'GET' | 'POST';
  readonly body?: string;
}

/** A JSON body of exactly `bytes` bytes that the bench policy allows. */
function noteBody(bytes: number): string {
  const empty = JSON.stringify({ kind: 'note', text: '' });
  return JSON.stringify({ kind: 'note', text: 'x'.repeat(bytes - empty.length) });
}

const WORKLOADS: readonly Workload[] = [
  { name: 'GET', method: 'GET' },
  { name: 'POST 1KB', method: 'POST', body: noteBody(1024) },
];

function headersFor(w: Workload, key = AGENT_KEY): Record<string, string> {
  // Every target gets the same bytes: the agent key means nothing to the upstream or the bare proxy.
  return { authorization: `Bearer ${key}`, ...(w.body !== undefined ? { 'content-type': 'application/json' } : {}) };
}

/** Run settings, from the environment. */
const settings = {
  durationSeconds: numberSetting('BENCH_DURATION', 5),
  warmupSeconds: numberSetting('BENCH_WARMUP', 1),
  primeSeconds: numberSetting('BENCH_PRIME', 1),
  connections: listSetting('BENCH_CONNECTIONS', [1, 16, 64]),
  relaxed: process.env.BENCH_RELAXED !== '0',
  pin: process.env.BENCH_PIN !== '0' && os.availableParallelism() >= 2 && canPin(),
  cpuProfile: process.env.BENCH_CPU_PROF === '1',
  keep: process.env.BENCH_KEEP === '1',
  maxForeignCores: numberSetting('BENCH_MAX_FOREIGN_CPU', 0.1),
  retries: numberSetting('BENCH_RETRIES', 2),
};

/** Fails the run with a message that says what went wrong and where. */
function fail(message: string): never {
  throw new Error(`benchmark invalid: ${message}`);
}

/** The processes of one benchmark run. */
interface Bench {
  readonly upstream: Child;
  readonly load: Child;
  /** Every target, in TARGETS order ('direct' is the upstream itself). */
  readonly targets: ReadonlyMap<TargetName, Child>;
  /** Every process started, for stopping and for telling our CPU use from others'. */
  readonly children: readonly Child[];
}

/** Starts the upstream, then the proxies and the load generator; each is stopped by the caller. */
async function startBench(work: string, children: Child[]): Promise<Bench> {
  const cpu = (n: number) => (settings.pin ? n : null);
  const started = async (pending: Promise<Child>) => {
    const child = await pending;
    children.push(child);
    return child;
  };
  const upstream = await started(startChild({ script: 'upstream', name: 'upstream', cpu: cpu(1), env: { BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN } }));
  const env = { BENCH_UPSTREAM_URL: upstream.url, BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN, BENCH_AGENT_KEY: AGENT_KEY };
  const gateway = (durability: 'strict' | 'relaxed') =>
    started(
      startChild({
        script: 'gateway',
        name: `portcullis-${durability}`,
        cpu: cpu(1),
        env: { ...env, BENCH_DURABILITY: durability, BENCH_WORK_DIR: path.join(work, durability) },
        execArgv: settings.cpuProfile ? ['--cpu-prof', '--cpu-prof-dir', path.join(RESULTS_DIR, 'profiles'), '--cpu-prof-name', `portcullis-${durability}.cpuprofile`] : [],
      }),
    );
  const [bare, strict, relaxed, load] = await Promise.all([
    // http-proxy 1.18 calls the deprecated util._extend; the warning is noise here.
    started(startChild({ script: 'bare-proxy', name: 'bare-proxy', cpu: cpu(1), env, execArgv: ['--no-deprecation'] })),
    gateway('strict'),
    settings.relaxed ? gateway('relaxed') : null,
    started(startChild({ script: 'load', name: 'load generator', cpu: cpu(0) })),
  ]);
  const targets = new Map<TargetName, Child>([
    ['direct', upstream],
    ['bare-proxy', bare],
    ['portcullis-strict', strict],
  ]);
  if (relaxed) targets.set('portcullis-relaxed', relaxed);
  return { upstream, load, targets, children };
}

/** Checks each target by hand before loading it, so a deny or a missing credential cannot pass as speed. */
async function preflight(bench: Bench): Promise<void> {
  for (const [name, child] of bench.targets) {
    for (const w of WORKLOADS) {
      const res = await fetch(child.url + PATH, { method: w.method, headers: headersFor(w), body: w.body });
      await res.arrayBuffer();
      if (res.status !== 200) fail(`${name}: ${w.method} ${PATH} answered ${res.status}, expected 200`);
      const injected = res.headers.get(SAW_CREDENTIAL_HEADER) === '1';
      const shouldInject = name.startsWith('portcullis');
      if (injected !== shouldInject) fail(`${name}: the upstream ${injected ? 'received' : 'did not receive'} the route credential`);
    }
    if (!name.startsWith('portcullis')) continue;
    const denied = await fetch(child.url + PATH, { method: 'POST', headers: headersFor(WORKLOADS[1]), body: '{"kind":"other","text":""}' });
    await denied.arrayBuffer();
    if (denied.status !== 403) fail(`${name}: a POST the policy forbids answered ${denied.status}, expected 403`);
    const stranger = await fetch(child.url + PATH, { headers: headersFor(WORKLOADS[0], 'not-an-agent-key') });
    await stranger.arrayBuffer();
    if (stranger.status < 400) fail(`${name}: an unknown agent key answered ${stranger.status}`);
  }
}

function jobFor(bench: Bench, target: TargetName, w: Workload, connections: number): LoadJob {
  return {
    type: 'run',
    url: (bench.targets.get(target) as Child).url + PATH,
    method: w.method,
    headers: headersFor(w),
    body: w.body,
    connections,
    warmupSeconds: settings.warmupSeconds,
    durationSeconds: settings.durationSeconds,
  };
}

/** Gives every target each workload once, unmeasured, so JIT compilation is done before the first run. */
async function prime(bench: Bench): Promise<void> {
  if (settings.primeSeconds === 0) return;
  for (const target of bench.targets.keys()) {
    for (const w of WORKLOADS) {
      const job = { ...jobFor(bench, target, w, Math.max(...settings.connections)), warmupSeconds: 0, durationSeconds: settings.primeSeconds };
      const reply = await bench.load.ask<LoadReply>(job);
      if (reply.type === 'error') fail(`${target} ${w.name} (priming): autocannon failed: ${reply.message}`);
      const failures = failuresOf(reply);
      if (failures.length > 0) fail(`${target} ${w.name} (priming): ${failures.join('; ')}`);
    }
  }
}

/** A run's result with how disturbed it was and what it cost. */
type Measured = Omit<Row, 'workload' | 'connections' | 'target'>;

function perRequestUs(before: number | null, after: number | null, r: LoadResult): number | null {
  return before === null || after === null ? null : ((after - before) / (r.requests + r.warmupRequests)) * 1e6;
}

/**
 * Runs one job, repeating it (up to settings.retries times) while processes outside the
 * benchmark used more than settings.maxForeignCores of the machine; keeps the least disturbed.
 */
async function measure(bench: Bench, target: TargetName, job: LoadJob): Promise<Measured> {
  const own = [process.pid, ...bench.children.map((c) => c.process.pid as number)];
  const targetPid = (bench.targets.get(target) as Child).process.pid as number;
  const upstreamPid = bench.upstream.process.pid as number;
  const sample = () => ({ machine: sampleCpu(own), target: processCpuSeconds(targetPid), upstream: processCpuSeconds(upstreamPid) });
  let best: Omit<Measured, 'attempts'> | null = null;
  let attempts = 0;
  while (attempts <= settings.retries) {
    attempts++;
    const before = sample();
    const reply = await bench.load.ask<LoadReply>(job);
    const after = sample();
    if (reply.type === 'error') fail(`${target}: autocannon failed: ${reply.message}`);
    const { type: _type, ...result } = reply;
    const share = before.machine && after.machine ? cpuShareBetween(before.machine, after.machine) : null;
    const foreignCores = share?.foreignCores ?? null;
    if (!best || (foreignCores ?? 0) < (best.foreignCores ?? 0)) {
      best = {
        ...result,
        foreignCores,
        stealCores: share?.stealCores ?? null,
        cpuUsPerRequest: perRequestUs(before.target, after.target, reply),
        upstreamCpuUsPerRequest: perRequestUs(before.upstream, after.upstream, reply),
      };
    }
    if (foreignCores === null || foreignCores <= settings.maxForeignCores) break;
    process.stderr.write(`bench: other processes used ${foreignCores.toFixed(2)} cores during that run; repeating it\n`);
  }
  return { ...(best as Omit<Measured, 'attempts'>), attempts };
}

/**
 * Measures every workload × connection count × target, stopping at the first failed request.
 * The order of the targets rotates from one group to the next, so no target is always the one
 * measured right after another (on a shared VM, position alone moved results by 10–20%).
 */
async function runAll(bench: Bench): Promise<Row[]> {
  const rows: Row[] = [];
  const entries = [...bench.targets];
  const total = WORKLOADS.length * settings.connections.length * entries.length;
  let group = 0;
  for (const w of WORKLOADS) {
    for (const connections of settings.connections) {
      const shift = group++ % entries.length;
      for (const [target, child] of [...entries.slice(shift), ...entries.slice(0, shift)]) {
        const row: Row = { workload: w.name, connections, target, ...(await measure(bench, target, jobFor(bench, target, w, connections))) };
        // One failed request makes the figures meaningless (a deny is fast): stop here.
        const failures = failuresOf(row);
        if (child.process.exitCode !== null || child.process.signalCode !== null) failures.push('the target process died');
        if (failures.length > 0) fail(`${target} ${w.name} c=${connections}: ${failures.join('; ')}`);
        rows.push(row);
        process.stderr.write(`bench: ${rows.length}/${total} ${w.name} c=${connections} ${target}: ${Math.round(row.requestsPerSecond)} req/s, p50 ${row.p50Ms.toFixed(3)} ms\n`);
      }
      // Report in TARGETS order whatever order the group ran in.
      rows.push(...rows.splice(rows.length - entries.length).sort((a, b) => TARGETS.indexOf(a.target) - TARGETS.indexOf(b.target)));
    }
  }
  return rows;
}

/** Checks that every call a gateway answered left a decision and an outcome in its trail. */
async function checkAudit(bench: Bench, rows: readonly Row[]): Promise<Record<string, { records: number; callsMeasured: number }>> {
  const out: Record<string, { records: number; callsMeasured: number }> = {};
  for (const [name, child] of bench.targets) {
    if (!name.startsWith('portcullis')) continue;
    const { auditSeq } = await child.ask<StatsReply>({ type: 'stats' });
    // A lower bound: priming, preflight and repeated runs add records too.
    const callsMeasured = rows.filter((r) => r.target === name).reduce((n, r) => n + r.requests + r.warmupRequests, 0);
    if (auditSeq < 2 * callsMeasured) fail(`${name}: ${auditSeq} audit records for at least ${callsMeasured} calls`);
    out[name] = { records: auditSeq, callsMeasured };
  }
  return out;
}

async function main(): Promise<void> {
  const environment = describeEnvironment(ROOT, process.env.PORTCULLIS_OPA ?? 'opa');
  const work = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-'));
  const auditFilesystem = statfsSync(work).type === TMPFS_MAGIC ? 'tmpfs (fdatasync costs nothing: strict figures are optimistic)' : 'disk';
  const children: Child[] = [];
  // Interrupted: the children exit when their IPC channel closes; the work directory is ours to remove.
  const interrupted = () => {
    if (!settings.keep) rmSync(work, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  try {
    const bench = await startBench(work, children);
    await preflight(bench);
    process.stderr.write(
      `bench: priming, then ${WORKLOADS.length * settings.connections.length * bench.targets.size} runs of ` +
        `${settings.warmupSeconds}+${settings.durationSeconds} s; ${settings.pin ? 'load generator on CPU 0, upstream and proxy on CPU 1' : 'no CPU pinning'}\n`,
    );
    await prime(bench);
    const rows = await runAll(bench);
    const audit = await checkAudit(bench, rows);

    const comparisons = compare(rows);
    const verdicts = judge(comparisons);
    const disturbed = rows
      .filter((r) => r.foreignCores !== null && r.foreignCores > settings.maxForeignCores)
      .map((r) => `${r.target} ${r.workload} c=${r.connections}: other processes used ${(r.foreignCores as number).toFixed(2)} cores`);
    const report = {
      date: new Date().toISOString(),
      settings: { ...settings, workloads: WORKLOADS.map((w) => ({ name: w.name, method: w.method, bodyBytes: w.body?.length ?? 0 })), path: PATH },
      environment: { ...environment, auditFilesystem },
      rows,
      comparisons,
      verdicts,
      audit,
      disturbed,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, 'latest.json');
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);

    const e = environment;
    process.stdout.write(
      [
        '',
        `Portcullis benchmark, ${report.date}`,
        `${e.cpus} × ${e.cpuModel}, ${e.memoryGiB} GiB, ${e.kernel}`,
        `Node ${e.node}, OPA ${e.opa}, undici ${e.undici}, http-proxy ${e.httpProxy}, autocannon ${e.autocannon}`,
        `${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s per run; ${settings.pin ? 'load on CPU 0, upstream + proxy on CPU 1' : 'unpinned'}; audit on ${auditFilesystem}`,
        '',
        formatRows(rows),
        '',
        formatComparisons(comparisons),
        '',
        formatVerdicts(verdicts),
        ...disturbed.map((d) => `warning: ${d}; its figures understate the target`),
        `results written to ${path.relative(process.cwd(), file)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    if (!settings.keep) rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`\n${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

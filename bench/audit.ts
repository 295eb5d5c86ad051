/**
 * `npm run bench:audit`: what the audit trail costs. Three parts, each target in its own
 * process (bench/child.ts):
 *
 * 1. Writer throughput: the real JsonlAuditWriter on the real disk, N producers each waiting
 *    for their record to be durable (bench/audit-writer-load.ts). Durable records per second,
 *    records per batch, fdatasyncs; strict and relaxed. Target: ≥ 20,000 durable records/s.
 * 2. Writer latency at a constant arrival rate: append → durable, strict against relaxed.
 * 3. Calls at a constant arrival rate (open loop, bench/rate-load.ts) through the upstream
 *    alone, Portcullis relaxed and Portcullis strict: p50/p99/p99.9 measured from each call's
 *    due time, and what strict adds over relaxed (the group commit's fdatasync) and over
 *    direct. Target: ≤ 2 ms added p99 at 1,000 calls/s.
 *
 * For part 3, on a machine with two or more CPUs, the load generator is pinned to CPU 0 and the
 * upstream and the gateway to CPU 1, as in bench/run.ts; parts 1 and 2 run alone, unpinned. Any failed call or non-2xx
 * answer stops the run with a non-zero exit and no results file.
 *
 * Settings (environment):
 *   BENCH_AUDIT_RECORDS      records per throughput run (200000)
 *   BENCH_AUDIT_MAX_SECONDS  a throughput run stops after this long (10)
 *   BENCH_AUDIT_IN_FLIGHT    producers waiting at once, per throughput run (1,16,256,1024)
 *   BENCH_AUDIT_RATES        arrival rates, calls or records per second (1000,2000,5000)
 *   BENCH_AUDIT_DURATION     seconds measured per rate run (10)
 *   BENCH_AUDIT_WARMUP       seconds at the same rate before each, not measured (2)
 *   BENCH_AUDIT_CONNECTIONS  connections the load generator may open (64)
 *   BENCH_AUDIT_PARTS        which parts to run (writer,calls)
 *   BENCH_PIN=0              do not pin processes to CPUs
 *   BENCH_KEEP=1             keep the work directory (configs, audit trails)
 *   BENCH_MAX_FOREIGN_CPU    cores other processes may use during a run before it is repeated (0.1)
 *   BENCH_RETRIES            how many times a disturbed run is repeated (2)
 *
 * Like bench/run.ts, every run records how much CPU processes outside the benchmark took
 * (bench/cpu-usage.ts); a disturbed run is repeated and the least disturbed one kept.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RateJob, RateResult, ThroughputJob, ThroughputResult, WriterReply } from './audit-writer-load';
import { canPin, startChild, type Child } from './child';
import { cpuShareBetween, sampleCpu } from './cpu-usage';
import { ROUTE_PREFIX, type StatsReply } from './gateway';
import type { RateLoadJob, RateLoadReply, RateLoadResult } from './rate-load';
import { describeEnvironment } from './report';
import { listSetting, numberSetting, workDirectory } from './settings';
import { SAW_CREDENTIAL_HEADER } from './upstream';

const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
const AGENT_KEY = 'bench-agent-key-not-a-secret';
const UPSTREAM_TOKEN = 'bench-upstream-token-not-a-secret';
const PATH = `${ROUTE_PREFIX}items`;
const TMPFS_MAGIC = 0x01021994;

/** The issue's targets. */
export const AUDIT_TARGETS = { minDurableRecordsPerSecond: 20_000, maxAddedP99Ms: 2, atRatePerSecond: 1000 } as const;

const settings = {
  records: numberSetting('BENCH_AUDIT_RECORDS', 200_000),
  maxSeconds: numberSetting('BENCH_AUDIT_MAX_SECONDS', 10),
  inFlight: listSetting('BENCH_AUDIT_IN_FLIGHT', [1, 16, 256, 1024]),
  rates: listSetting('BENCH_AUDIT_RATES', [1000, 2000, 5000]),
  durationSeconds: numberSetting('BENCH_AUDIT_DURATION', 10),
  warmupSeconds: numberSetting('BENCH_AUDIT_WARMUP', 2),
  connections: numberSetting('BENCH_AUDIT_CONNECTIONS', 64),
  parts: (process.env.BENCH_AUDIT_PARTS || 'writer,calls').split(','),
  pin: process.env.BENCH_PIN !== '0' && os.availableParallelism() >= 2 && canPin(),
  keep: process.env.BENCH_KEEP === '1',
  maxForeignCores: numberSetting('BENCH_MAX_FOREIGN_CPU', 0.1),
  retries: numberSetting('BENCH_RETRIES', 2),
};

/** How disturbed a run was: cores used by other processes and taken by the hypervisor (null: unknown). */
interface Disturbance {
  readonly foreignCores: number | null;
  readonly stealCores: number | null;
  /** How many times the run was made. */
  readonly attempts: number;
}

/**
 * Runs `once`, repeating it (up to settings.retries times) while processes outside the
 * benchmark used more than settings.maxForeignCores; keeps the least disturbed result.
 */
async function undisturbed<T extends object>(label: string, children: readonly Child[], once: () => Promise<T>): Promise<T & Disturbance> {
  const own = [process.pid, ...children.map((c) => c.process.pid as number)];
  let best: { result: T; foreignCores: number | null; stealCores: number | null } | null = null;
  let attempts = 0;
  while (attempts <= settings.retries) {
    attempts++;
    const before = sampleCpu(own);
    const result = await once();
    const after = sampleCpu(own);
    const share = before && after ? cpuShareBetween(before, after) : null;
    const foreignCores = share?.foreignCores ?? null;
    if (!best || (foreignCores ?? 0) < (best.foreignCores ?? 0)) best = { result, foreignCores, stealCores: share?.stealCores ?? null };
    if (foreignCores === null || foreignCores <= settings.maxForeignCores) break;
    log(`other processes used ${foreignCores.toFixed(2)} cores during ${label}${attempts <= settings.retries ? '; repeating it' : ''}`);
  }
  const { result, foreignCores, stealCores } = best!;
  return { ...result, foreignCores, stealCores, attempts };
}

const CALL_TARGETS = ['direct', 'portcullis-relaxed', 'portcullis-strict'] as const;
type CallTarget = (typeof CALL_TARGETS)[number];
type Durability = 'strict' | 'relaxed';

/** One throughput run of the writer. */
interface ThroughputRow extends Omit<ThroughputResult, 'type'>, Disturbance {
  readonly durability: Durability;
  readonly inFlight: number;
}

/** One constant-rate run of the writer. */
interface WriterRateRow extends Omit<RateResult, 'type'>, Disturbance {
  readonly durability: Durability;
  readonly ratePerSecond: number;
}

/** One constant-rate run of calls. */
interface CallRow extends Omit<RateLoadResult, 'type'>, Disturbance {
  readonly target: CallTarget;
  readonly ratePerSecond: number;
}

/** Differences of percentiles at one rate, ms (a percentile of the difference is not measurable). */
interface Added {
  readonly ratePerSecond: number;
  readonly what: string;
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
  readonly addedP999Ms: number;
}

function fail(message: string): never {
  throw new Error(`benchmark invalid: ${message}`);
}

function log(line: string): void {
  process.stderr.write(`bench:audit: ${line}\n`);
}

/** The filesystem the work directory is on, as `df -T` names it. */
function filesystemOf(dir: string): string {
  try {
    const last = execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').at(-1)!.split(/\s+/);
    const type = statfsSync(dir).type === TMPFS_MAGIC ? 'tmpfs (fdatasync costs nothing: strict figures are optimistic)' : last[1];
    return `${type} on ${last[0]} (mounted at ${last.at(-1)})`;
  } catch {
    return statfsSync(dir).type === TMPFS_MAGIC ? 'tmpfs' : 'unknown';
  }
}

async function writerPart(work: string, children: Child[]): Promise<{ throughput: ThroughputRow[]; rates: WriterRateRow[] }> {
  // Not pinned: its main thread spins at constant rate (bench/open-loop.ts), and on one CPU
  // that would delay the thread-pool thread whose fdatasync it is waiting for.
  const writer = await startChild({ script: 'audit-writer-load', name: 'audit writer', cpu: null });
  children.push(writer);
  const ask = async <T extends ThroughputResult | RateResult>(job: ThroughputJob | RateJob): Promise<T> => {
    const reply = await writer.ask<WriterReply>(job);
    // Gone before the next run: a relaxed run's unsynced pages would otherwise be written back
    // during it, and on ext4 an fdatasync can wait for other files' writeback.
    rmSync(job.dir, { recursive: true, force: true });
    if (reply.type === 'error') fail(`audit writer: ${reply.message}`);
    return reply as T;
  };
  // One unmeasured run first, so the measured ones do not pay for JIT compilation.
  await ask({ type: 'throughput', dir: path.join(work, 'writer-prime'), durability: 'relaxed', inFlight: 64, records: 20_000, maxSeconds: 5 });
  const throughput: ThroughputRow[] = [];
  for (const durability of ['strict', 'relaxed'] as const) {
    for (const inFlight of settings.inFlight) {
      let attempt = 0;
      const r = await undisturbed(`writer ${durability} ${inFlight}`, children, () =>
        ask<ThroughputResult>({
          type: 'throughput',
          dir: path.join(work, `writer-${durability}-${inFlight}-${attempt++}`),
          durability,
          inFlight,
          records: settings.records,
          maxSeconds: settings.maxSeconds,
        }),
      );
      const { type: _type, ...rest } = r;
      throughput.push({ durability, inFlight, ...rest });
      log(
        `writer ${durability}, ${inFlight} in flight: ${Math.round(r.recordsPerSecond)} records/s, ${r.recordsPerBatch.toFixed(1)} records/batch, append p99 ${r.append.p99Ms.toFixed(3)} ms`,
      );
    }
  }
  const rates: WriterRateRow[] = [];
  for (const ratePerSecond of settings.rates) {
    for (const durability of ['relaxed', 'strict'] as const) {
      let attempt = 0;
      const r = await undisturbed(`writer ${durability} at ${ratePerSecond}/s`, children, () =>
        ask<RateResult>({
          type: 'rate',
          dir: path.join(work, `writer-rate-${durability}-${ratePerSecond}-${attempt++}`),
          durability,
          ratePerSecond,
          warmupSeconds: settings.warmupSeconds,
          seconds: settings.durationSeconds,
        }),
      );
      if (r.failed > 0) fail(`writer ${durability} at ${ratePerSecond}/s: ${r.failed} appends failed`);
      const { type: _type, ...rest } = r;
      rates.push({ durability, ratePerSecond, ...rest });
      log(`writer ${durability} at ${ratePerSecond}/s: p50 ${r.latency.p50Ms.toFixed(3)} ms, p99 ${r.latency.p99Ms.toFixed(3)} ms`);
    }
  }
  await writer.stop();
  return { throughput, rates };
}

async function callPart(work: string, children: Child[]): Promise<{ rows: CallRow[]; auditRecords: Record<string, number> }> {
  const started = async (pending: Promise<Child>) => {
    const child = await pending;
    children.push(child);
    return child;
  };
  const cpu = (n: number) => (settings.pin ? n : null);
  const upstream = await started(startChild({ script: 'upstream', name: 'upstream', cpu: cpu(1), env: { BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN } }));
  const env = { BENCH_UPSTREAM_URL: upstream.url, BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN, BENCH_AGENT_KEY: AGENT_KEY };
  const gateway = (durability: Durability) =>
    started(
      startChild({
        script: 'gateway',
        name: `portcullis-${durability}`,
        cpu: cpu(1),
        env: { ...env, BENCH_DURABILITY: durability, BENCH_WORK_DIR: path.join(work, `gateway-${durability}`) },
      }),
    );
  const [relaxed, strict, load] = await Promise.all([
    gateway('relaxed'),
    gateway('strict'),
    started(startChild({ script: 'rate-load', name: 'load generator', cpu: cpu(0) })),
  ]);
  const targets = new Map<CallTarget, Child>([
    ['direct', upstream],
    ['portcullis-relaxed', relaxed],
    ['portcullis-strict', strict],
  ]);
  const headers = { authorization: `Bearer ${AGENT_KEY}` };

  // By hand first: a deny or a missing credential must not pass as speed.
  for (const [name, child] of targets) {
    const res = await fetch(child.url + PATH, { headers });
    await res.arrayBuffer();
    if (res.status !== 200) fail(`${name}: GET ${PATH} answered ${res.status}, expected 200`);
    if ((res.headers.get(SAW_CREDENTIAL_HEADER) === '1') !== name.startsWith('portcullis'))
      fail(`${name}: the route credential was ${name.startsWith('portcullis') ? 'not ' : ''}injected`);
  }

  // Every target gets the first rate once, unmeasured, so no run pays for JIT compilation.
  for (const [target, child] of targets) {
    const reply = await load.ask<RateLoadReply>({
      type: 'run',
      url: child.url + PATH,
      headers,
      ratePerSecond: settings.rates[0],
      warmupSeconds: 0,
      seconds: settings.warmupSeconds,
      connections: settings.connections,
    } satisfies RateLoadJob);
    if (reply.type === 'error' || reply.errors || Object.keys(reply.non2xx).length) fail(`${target} (priming): ${JSON.stringify(reply)}`);
  }
  execFileSync('sync');

  const rows: CallRow[] = [];
  let group = 0;
  for (const ratePerSecond of settings.rates) {
    // Rotate the order so no target is always measured right after another.
    const shift = group++ % CALL_TARGETS.length;
    for (const target of [...CALL_TARGETS.slice(shift), ...CALL_TARGETS.slice(0, shift)]) {
      const child = targets.get(target)!;
      const job: RateLoadJob = {
        type: 'run',
        url: child.url + PATH,
        headers,
        ratePerSecond,
        warmupSeconds: settings.warmupSeconds,
        seconds: settings.durationSeconds,
        connections: settings.connections,
      };
      const reply = await undisturbed(`${target} at ${ratePerSecond}/s`, children, async () => {
        const r = await load.ask<RateLoadReply>(job);
        if (r.type === 'error') fail(`${target} at ${ratePerSecond}/s: ${r.message}`);
        return r;
      });
      const problems = [
        ...(reply.errors ? [`${reply.errors} failed requests`] : []),
        ...Object.entries(reply.non2xx).map(([s, n]) => `${n} × HTTP ${s}`),
        ...(child.process.exitCode !== null || child.process.signalCode !== null ? ['the target process died'] : []),
      ];
      if (problems.length) fail(`${target} at ${ratePerSecond}/s: ${problems.join('; ')}`);
      const { type: _type, ...rest } = reply;
      rows.push({ target, ratePerSecond, ...rest });
      log(
        `${target} at ${ratePerSecond}/s: achieved ${Math.round(reply.achievedPerSecond)}/s, p50 ${reply.latency.p50Ms.toFixed(3)} ms, p99 ${reply.latency.p99Ms.toFixed(3)} ms`,
      );
    }
  }
  rows.sort((a, b) => a.ratePerSecond - b.ratePerSecond || CALL_TARGETS.indexOf(a.target) - CALL_TARGETS.indexOf(b.target));

  // Every call a gateway answered left a decision and an outcome record.
  const auditRecords: Record<string, number> = {};
  for (const name of ['portcullis-relaxed', 'portcullis-strict'] as const) {
    const { auditSeq } = await targets.get(name)!.ask<StatsReply>({ type: 'stats' });
    const calls = rows.filter((r) => r.target === name).reduce((n, r) => n + r.ok, 0);
    if (auditSeq < 2 * calls) fail(`${name}: ${auditSeq} audit records for at least ${calls} calls`);
    auditRecords[name] = auditSeq;
  }
  return { rows, auditRecords };
}

function added(rate: number, what: string, a: { p50Ms: number; p99Ms: number; p999Ms: number }, b: { p50Ms: number; p99Ms: number; p999Ms: number }): Added {
  return { ratePerSecond: rate, what, addedP50Ms: a.p50Ms - b.p50Ms, addedP99Ms: a.p99Ms - b.p99Ms, addedP999Ms: a.p999Ms - b.p999Ms };
}

function comparisons(writerRates: readonly WriterRateRow[], calls: readonly CallRow[]): Added[] {
  const out: Added[] = [];
  for (const rate of settings.rates) {
    const call = (t: CallTarget) => calls.find((r) => r.target === t && r.ratePerSecond === rate)?.latency;
    const w = (d: Durability) => writerRates.find((r) => r.durability === d && r.ratePerSecond === rate)?.latency;
    const [direct, relaxed, strict, ws, wr] = [call('direct'), call('portcullis-relaxed'), call('portcullis-strict'), w('strict'), w('relaxed')];
    if (strict && relaxed) out.push(added(rate, 'calls: strict − relaxed (group commit)', strict, relaxed));
    if (strict && direct) out.push(added(rate, 'calls: strict − direct (all of Portcullis)', strict, direct));
    if (relaxed && direct) out.push(added(rate, 'calls: relaxed − direct', relaxed, direct));
    if (ws && wr) out.push(added(rate, 'writer: strict − relaxed (group commit)', ws, wr));
  }
  return out;
}

function table(header: readonly string[], body: readonly (readonly string[])[], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
const cores = (n: number | null) => (n === null ? '?' : n.toFixed(2));

async function main(): Promise<void> {
  const environment = describeEnvironment(ROOT, process.env.PORTCULLIS_OPA ?? 'opa');
  const work = workDirectory('portcullis-bench-audit-', settings.keep);
  const filesystem = filesystemOf(work);
  const children: Child[] = [];
  try {
    log(`audit directory on ${filesystem}; ${settings.pin ? 'load generator on CPU 0, targets on CPU 1' : 'no CPU pinning'}`);
    const writer = settings.parts.includes('writer') ? await writerPart(work, children) : { throughput: [], rates: [] };
    // Each part starts with nothing left to write back from the one before.
    execFileSync('sync');
    const calls = settings.parts.includes('calls') ? await callPart(work, children) : { rows: [], auditRecords: {} };
    const added = comparisons(writer.rates, calls.rows);

    const strictThroughput = writer.throughput.filter((r) => r.durability === 'strict');
    const at1000 = (what: string) => added.find((a) => a.ratePerSecond === AUDIT_TARGETS.atRatePerSecond && a.what.startsWith(what));
    const verdicts = {
      durableRecordsPerSecond: strictThroughput.map((r) => ({
        inFlight: r.inFlight,
        recordsPerSecond: r.recordsPerSecond,
        met: r.recordsPerSecond >= AUDIT_TARGETS.minDurableRecordsPerSecond,
      })),
      addedP99At1000: ['calls: strict − relaxed', 'calls: strict − direct', 'writer: strict − relaxed'].map((what) => {
        const a = at1000(what);
        return { what, addedP99Ms: a?.addedP99Ms ?? null, met: a ? a.addedP99Ms <= AUDIT_TARGETS.maxAddedP99Ms : null };
      }),
    };
    const disturbed = [
      ...writer.throughput.map((r) => ({ label: `writer ${r.durability} ${r.inFlight} in flight`, r })),
      ...writer.rates.map((r) => ({ label: `writer ${r.durability} at ${r.ratePerSecond}/s`, r })),
      ...calls.rows.map((r) => ({ label: `${r.target} at ${r.ratePerSecond}/s`, r })),
    ]
      .filter(({ r }) => r.foreignCores !== null && r.foreignCores > settings.maxForeignCores)
      .map(({ label, r }) => `${label}: other processes used ${(r.foreignCores as number).toFixed(2)} cores`);
    const report = {
      date: new Date().toISOString(),
      settings,
      environment: { ...environment, auditFilesystem: filesystem },
      targets: AUDIT_TARGETS,
      writer,
      calls,
      added,
      verdicts,
      disturbed,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, 'audit-latest.json');
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);

    const e = environment;
    const word = (met: boolean | null) => (met === null ? 'not measured' : met ? 'MET' : 'NOT MET');
    process.stdout.write(
      [
        '',
        `Portcullis audit benchmark, ${report.date}`,
        `${e.cpus} × ${e.cpuModel}, ${e.memoryGiB} GiB, ${e.kernel}; Node ${e.node}, OPA ${e.opa}, undici ${e.undici}`,
        `audit directory on ${filesystem}; ${settings.pin ? 'load on CPU 0, targets on CPU 1' : 'unpinned'}`,
        '',
        'Writer throughput (producers each wait for their record to be durable):',
        table(
          ['durability', 'in flight', 'records', 'records/s', 'records/batch', 'fdatasyncs', 'append p50 ms', 'append p99 ms', 'other CPU'],
          writer.throughput.map((r) => [
            r.durability,
            String(r.inFlight),
            String(r.records),
            r.recordsPerSecond.toFixed(0),
            r.recordsPerBatch.toFixed(1),
            String(r.fdatasyncs),
            ms(r.append.p50Ms),
            ms(r.append.p99Ms),
            cores(r.foreignCores),
          ]),
          1,
        ),
        '',
        `Writer at a constant rate (${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s; append due time → durable):`,
        table(
          ['rate/s', 'durability', 'records', 'records/batch', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'other CPU'],
          writer.rates.map((r) => [
            String(r.ratePerSecond),
            r.durability,
            String(r.completed),
            r.recordsPerBatch.toFixed(2),
            ms(r.latency.p50Ms),
            ms(r.latency.p99Ms),
            ms(r.latency.p999Ms),
            ms(r.latency.maxMs),
            cores(r.foreignCores),
          ]),
          2,
        ),
        '',
        `Calls at a constant rate (GET ${PATH}; ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s; due time → end of answer):`,
        table(
          ['rate/s', 'target', 'achieved/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'max outstanding', 'max send lag ms', 'other CPU', 'steal'],
          calls.rows.map((r) => [
            String(r.ratePerSecond),
            r.target,
            r.achievedPerSecond.toFixed(0),
            ms(r.latency.p50Ms),
            ms(r.latency.p99Ms),
            ms(r.latency.p999Ms),
            ms(r.latency.maxMs),
            String(r.maxOutstanding),
            ms(r.maxSendLagMs),
            cores(r.foreignCores),
            cores(r.stealCores),
          ]),
          2,
        ),
        '',
        'Added latency (difference of percentiles):',
        table(
          ['rate/s', 'what', '+p50 ms', '+p99 ms', '+p99.9 ms'],
          added.map((a) => [String(a.ratePerSecond), a.what, ms(a.addedP50Ms), ms(a.addedP99Ms), ms(a.addedP999Ms)]),
          2,
        ),
        '',
        ...verdicts.durableRecordsPerSecond.map(
          (v) =>
            `≥ ${AUDIT_TARGETS.minDurableRecordsPerSecond} durable records/s (strict, ${v.inFlight} in flight): ${word(v.met)} (${v.recordsPerSecond.toFixed(0)}/s)`,
        ),
        ...verdicts.addedP99At1000.map(
          (v) =>
            `≤ ${AUDIT_TARGETS.maxAddedP99Ms} ms added p99 at ${AUDIT_TARGETS.atRatePerSecond}/s, ${v.what}: ${word(v.met)}${v.addedP99Ms === null ? '' : ` (${ms(v.addedP99Ms)} ms)`}`,
        ),
        ...disturbed.map((d) => `warning: ${d}; its figures are pessimistic`),
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

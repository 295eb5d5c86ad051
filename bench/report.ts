/**
 * Turns measured rows into the benchmark's report: the comparisons the issue asks for
 * (Portcullis against the direct upstream and against the bare http-proxy), the verdict on the
 * two targets, the machine and tool versions, and the plain-text tables printed to stdout.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LoadResult } from './load';

/** The targets, in the order they are reported (run.ts rotates the order they are measured in). */
export const TARGETS = ['direct', 'bare-proxy', 'portcullis-strict', 'portcullis-relaxed'] as const;
/** One of the targets. */
export type TargetName = (typeof TARGETS)[number];

/** Most a Portcullis p50 may exceed the direct one, per the issue. */
export const MAX_ADDED_P50_MS = 1;

/** One target measured under one workload. */
export interface Row extends Omit<LoadResult, 'type'> {
  readonly workload: string;
  readonly connections: number;
  readonly target: TargetName;
  /** Cores used by processes outside the benchmark during the run (see cpu-usage.ts); null if unknown. */
  readonly foreignCores: number | null;
  /** Cores the hypervisor gave to other guests while this VM wanted them; null if unknown. */
  readonly stealCores: number | null;
  /** CPU time of the target's process per request, µs (for direct: the upstream's). */
  readonly cpuUsPerRequest: number | null;
  /** CPU time of the upstream per request, µs. */
  readonly upstreamCpuUsPerRequest: number | null;
  /** How many times the run was made (repeated while other processes disturbed it). */
  readonly attempts: number;
  /** Which round of the workloads (BENCH_ROUNDS), when there are several. */
  readonly round?: number;
}

/** A Portcullis row set against the baselines of the same workload. */
export interface Comparison {
  readonly workload: string;
  readonly connections: number;
  readonly target: TargetName;
  /** Portcullis req/s divided by direct req/s. */
  readonly vsDirect: number;
  /** Portcullis req/s divided by bare-proxy req/s. */
  readonly vsBareProxy: number;
  /** Portcullis CPU time per request divided by the bare proxy's; null if unknown. */
  readonly cpuVsBareProxy: number | null;
  /** Portcullis p50 minus direct p50, ms. */
  readonly addedP50Ms: number;
  /** Target 1: at least the bare proxy's throughput. */
  readonly throughputMet: boolean;
  /** Target 2: at most MAX_ADDED_P50_MS over direct. */
  readonly latencyMet: boolean;
}

/** Failures that make a row meaningless (every request must have been answered 2xx). */
export function failuresOf(row: Pick<LoadResult, 'errors' | 'timeouts' | 'non2xx' | 'requests'>): string[] {
  const out: string[] = [];
  if (row.errors > 0) out.push(`${row.errors} connection errors`);
  if (row.timeouts > 0) out.push(`${row.timeouts} timeouts`);
  for (const [status, n] of Object.entries(row.non2xx)) out.push(`${n} × HTTP ${status}`);
  if (row.requests === 0) out.push('no successful requests');
  return out;
}

/** Compares every Portcullis row with the direct and bare-proxy rows of its workload. */
export function compare(rows: readonly Row[]): Comparison[] {
  const find = (r: Row, target: TargetName) =>
    rows.find((x) => x.workload === r.workload && x.connections === r.connections && x.target === target && x.round === r.round);
  const out: Comparison[] = [];
  for (const r of rows) {
    if (!r.target.startsWith('portcullis')) continue;
    const direct = find(r, 'direct');
    const bare = find(r, 'bare-proxy');
    if (!direct || !bare) continue;
    const addedP50Ms = r.p50Ms - direct.p50Ms;
    out.push({
      workload: r.workload,
      connections: r.connections,
      target: r.target,
      vsDirect: r.requestsPerSecond / direct.requestsPerSecond,
      vsBareProxy: r.requestsPerSecond / bare.requestsPerSecond,
      cpuVsBareProxy: r.cpuUsPerRequest !== null && bare.cpuUsPerRequest ? r.cpuUsPerRequest / bare.cpuUsPerRequest : null,
      addedP50Ms,
      throughputMet: r.requestsPerSecond >= bare.requestsPerSecond,
      latencyMet: addedP50Ms <= MAX_ADDED_P50_MS,
    });
  }
  return out;
}

/** Whether one Portcullis variant met the issue's targets; null where nothing was measured. */
export interface Verdict {
  readonly target: TargetName;
  /** At 16+ connections (where every proxy saturates its core): req/s ≥ bare proxy. */
  readonly throughputAtLeastBareProxy: boolean | null;
  /** At 1 connection (nothing queues): p50 ≤ direct p50 + 1 ms. */
  readonly addedP50AtMost1msUnloaded: boolean | null;
  /** At 16+ connections, where p50 is mostly queueing behind the saturated core. */
  readonly addedP50AtMost1msUnderLoad: boolean | null;
}

/** Judges each Portcullis variant against the targets. */
export function judge(comparisons: readonly Comparison[]): Verdict[] {
  const all = (list: readonly Comparison[], ok: (c: Comparison) => boolean) => (list.length === 0 ? null : list.every(ok));
  const variants = [...new Set(comparisons.map((c) => c.target))];
  return variants.map((target) => {
    const mine = comparisons.filter((c) => c.target === target);
    const loaded = mine.filter((c) => c.connections > 1);
    const unloaded = mine.filter((c) => c.connections === 1);
    return {
      target,
      throughputAtLeastBareProxy: all(loaded, (c) => c.throughputMet),
      addedP50AtMost1msUnloaded: all(unloaded, (c) => c.latencyMet),
      addedP50AtMost1msUnderLoad: all(loaded, (c) => c.latencyMet),
    };
  });
}

/** The verdict lines printed under the tables; `label` names the workloads judged (e.g. REST, MCP). */
export function formatVerdicts(verdicts: readonly Verdict[], label?: string): string {
  const word = (v: boolean | null) => (v === null ? 'not measured' : v ? 'MET' : 'NOT MET');
  return verdicts
    .map(
      (v) =>
        `${label ? `${label}, ` : ''}${v.target}: throughput ≥ bare proxy (16+ connections): ${word(v.throughputAtLeastBareProxy)}; ` +
        `p50 ≤ direct + ${MAX_ADDED_P50_MS} ms at 1 connection: ${word(v.addedP50AtMost1msUnloaded)}, at 16+: ${word(v.addedP50AtMost1msUnderLoad)}`,
    )
    .join('\n');
}

/** Most gateway CPU per call a JWT (verified with a cached key) may add over an agent key, per issue 11. */
export const MAX_JWT_ADDED_CPU_US = 15;

/** Most gateway CPU per call a cached OAuth token (client credentials or exchanged) may add over the static bearer, per issue 12. */
export const MAX_CACHED_TOKEN_ADDED_CPU_US = 5;
/** Most gateway CPU per call SigV4 signing may add over the static bearer, per issue 12. */
export const MAX_SIGV4_ADDED_CPU_US = 40;

/** A Portcullis row of one workload set against another workload's row of the same target, connection count and round. */
export interface CredentialComparison {
  readonly workload: string;
  /** The workload it is set against (the agent-key GET, the static-bearer POST). */
  readonly baseline: string;
  readonly connections: number;
  readonly target: TargetName;
  /** The round of the two rows (BENCH_ROUNDS), when there are several. */
  readonly round?: number;
  /** Gateway CPU per call of the baseline, µs. */
  readonly baselineCpuUs: number;
  /** Gateway CPU per call of the workload, µs. */
  readonly cpuUs: number;
  /** cpuUs − baselineCpuUs. */
  readonly addedCpuUs: number;
  /** cpuUs ÷ baselineCpuUs. */
  readonly ratio: number;
  /** Req/s of the workload ÷ req/s of the baseline. */
  readonly throughputRatio: number;
  /** The goal: at most this many µs added. */
  readonly maxAddedCpuUs: number;
  /** addedCpuUs ≤ maxAddedCpuUs. */
  readonly met: boolean;
}

/**
 * Sets each Portcullis row of `workloads` against the `baseline` workload's row of the same
 * target, connection count and round; `maxAddedCpuUs` is the goal (default: issue 11's, for a JWT).
 */
export function compareCredentials(
  rows: readonly Row[],
  baseline: string,
  workloads: readonly string[],
  maxAddedCpuUs: number = MAX_JWT_ADDED_CPU_US,
): CredentialComparison[] {
  const out: CredentialComparison[] = [];
  for (const r of rows) {
    if (!r.target.startsWith('portcullis') || !workloads.includes(r.workload) || r.cpuUsPerRequest === null) continue;
    const base = rows.find((x) => x.workload === baseline && x.connections === r.connections && x.target === r.target && x.round === r.round);
    if (!base || base.cpuUsPerRequest === null) continue;
    const addedCpuUs = r.cpuUsPerRequest - base.cpuUsPerRequest;
    out.push({
      workload: r.workload,
      baseline,
      connections: r.connections,
      target: r.target,
      ...(r.round !== undefined ? { round: r.round } : {}),
      baselineCpuUs: base.cpuUsPerRequest,
      cpuUs: r.cpuUsPerRequest,
      addedCpuUs,
      ratio: r.cpuUsPerRequest / base.cpuUsPerRequest,
      throughputRatio: r.requestsPerSecond / base.requestsPerSecond,
      maxAddedCpuUs,
      met: addedCpuUs <= maxAddedCpuUs,
    });
  }
  return out;
}

/** Column labels of the comparison table: the baseline's and the workload's credential (default: the JWT comparison's). */
export interface CredentialLabels {
  /** e.g. "key", "static". */
  readonly baseline: string;
  /** e.g. "JWT", "cred". */
  readonly workload: string;
}

/** The workload-against-baseline table. */
export function formatCredentialComparisons(list: readonly CredentialComparison[], labels: CredentialLabels = { baseline: 'key', workload: 'JWT' }): string {
  const maxima = new Set(list.map((c) => c.maxAddedCpuUs));
  const uniform = maxima.size <= 1;
  const rounds = list.some((c) => c.round !== undefined);
  const header = [
    'workload',
    'conns',
    'target',
    ...(rounds ? ['round'] : []),
    ...(labels.workload === 'JWT' ? [] : ['baseline']),
    `${labels.baseline} CPU µs/req`,
    `${labels.workload} CPU µs/req`,
    '+CPU µs',
    `CPU ÷ ${labels.baseline}`,
    `req/s ÷ ${labels.baseline}`,
    uniform ? `+CPU ≤ ${[...maxima][0] ?? MAX_JWT_ADDED_CPU_US} µs` : 'goal',
  ];
  return table(
    header,
    list.map((c) => [
      c.workload,
      String(c.connections),
      c.target,
      ...(rounds ? [String(c.round ?? '')] : []),
      ...(labels.workload === 'JWT' ? [] : [c.baseline]),
      f(c.baselineCpuUs, 1),
      f(c.cpuUs, 1),
      f(c.addedCpuUs, 1),
      f(c.ratio, 3),
      f(c.throughputRatio, 3),
      `${uniform ? '' : `≤ ${c.maxAddedCpuUs} µs: `}${c.met ? 'met' : 'NOT met'}`,
    ]),
  );
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * One verdict line per workload, baseline and gateway: met when, at every connection count, the
 * difference (the median over the rounds, when there are several) is within the goal.
 * `baselineLabel` names the baseline in the line (default: the JWT comparison's "agent key").
 */
export function formatCredentialVerdicts(list: readonly CredentialComparison[], baselineLabel?: (c: CredentialComparison) => string): string {
  const keys = [...new Set(list.map((c) => `${c.workload}\u0000${c.baseline}\u0000${c.target}`))];
  return keys
    .map((k) => {
      const [workload, baseline, target] = k.split('\u0000');
      const mine = list.filter((c) => c.workload === workload && c.baseline === baseline && c.target === target);
      const max = mine[0].maxAddedCpuUs;
      const connections = [...new Set(mine.map((c) => c.connections))];
      const perConnections = connections.map((n) => {
        const added = mine.filter((c) => c.connections === n).map((c) => c.addedCpuUs);
        return { n, added, median: median(added) };
      });
      const met = perConnections.every((p) => p.median <= max);
      const what = perConnections
        .map((p) =>
          p.added.length === 1 ? `${f(p.median, 1)} µs at ${p.n}` : `median ${f(p.median, 1)} µs at ${p.n} (rounds: ${p.added.map((a) => f(a, 1)).join(', ')})`,
        )
        .join(', ');
      const label = baselineLabel ? baselineLabel(mine[0]) : 'agent key';
      return `${workload}, ${target}: gateway CPU per call ≤ ${label} + ${max} µs: ${met ? 'MET' : 'NOT MET'} (added ${what} connections)`;
    })
    .join('\n');
}

/** The machine and tool versions, recorded beside the figures. */
export interface Environment {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly opa: string;
  readonly undici: string;
  readonly httpProxy: string;
  readonly autocannon: string;
  readonly mcpSdk: string;
}

function packageVersion(root: string, name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function cpuModel(): string {
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }));
    if (m) return m[1].trim();
  } catch {
    /* no lscpu: fall back to what Node sees */
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** Describes this machine; `root` is the repository (for package versions). */
export function describeEnvironment(root: string, opaBinary: string): Environment {
  let opa = 'unknown';
  try {
    opa = /^Version:\s*(\S+)/m.exec(execFileSync(opaBinary, ['version'], { encoding: 'utf8' }))?.[1] ?? opa;
  } catch {
    /* reported as unknown */
  }
  return {
    cpus: os.availableParallelism(),
    cpuModel: cpuModel(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    opa,
    undici: packageVersion(root, 'undici'),
    httpProxy: packageVersion(root, 'http-proxy'),
    autocannon: packageVersion(root, 'autocannon'),
    mcpSdk: packageVersion(root, '@modelcontextprotocol/sdk'),
  };
}

function table(header: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

const f = (n: number, digits: number) => n.toFixed(digits);

/** The results table. */
export function formatRows(rows: readonly Row[]): string {
  const rounds = rows.some((r) => r.round !== undefined);
  return table(
    ['workload', 'conns', 'target', ...(rounds ? ['round'] : []), 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'other CPU', 'steal', 'errors/non-2xx'],
    rows.map((r) => [
      r.workload,
      String(r.connections),
      r.target,
      ...(rounds ? [String(r.round ?? '')] : []),
      f(r.requestsPerSecond, 0),
      f(r.p50Ms, 3),
      f(r.p99Ms, 3),
      r.cpuUsPerRequest === null ? '?' : f(r.cpuUsPerRequest, 0),
      r.foreignCores === null ? '?' : f(r.foreignCores, 2),
      r.stealCores === null ? '?' : f(r.stealCores, 2),
      failuresOf(r).join('; ') || '0',
    ]),
  );
}

/** The comparison table, with the verdict on each target. */
export function formatComparisons(comparisons: readonly Comparison[]): string {
  return table(
    ['workload', 'conns', 'target', 'req/s ÷ direct', 'req/s ÷ bare', 'CPU/req ÷ bare', '+p50 ms', '≥ bare proxy', `+p50 ≤ ${MAX_ADDED_P50_MS} ms`],
    comparisons.map((c) => [
      c.workload,
      String(c.connections),
      c.target,
      f(c.vsDirect, 3),
      f(c.vsBareProxy, 3),
      c.cpuVsBareProxy === null ? '?' : f(c.cpuVsBareProxy, 2),
      f(c.addedP50Ms, 3),
      // One connection measures latency, not capacity: its req/s is just 1 / latency.
      c.connections === 1 ? '-' : c.throughputMet ? 'met' : 'NOT met',
      c.latencyMet ? 'met' : 'NOT met',
    ]),
  );
}

/** Issue 13's goals, as ratios within one run. */
export const SPEED_GOALS = Object.freeze({
  /** Goal 1: REST req/s ÷ bare proxy at 16 and 64 connections, GET and 1 KB POST. */
  restThroughput: { 'portcullis-strict': 1.0, 'portcullis-relaxed': 1.3 },
  /** Goal 2: strict REST CPU per call ÷ the bare proxy's, at most. */
  restCpu: 0.8,
  /** Goal 3: MCP tools/call CPU per call ÷ the bare proxy's per REST call (1 KB POST), at most. */
  mcpCpu: 1.0,
  /** Goal 4: strict MCP req/s ÷ direct at 16 connections, at least. */
  mcpThroughput: 0.6,
  /** Goal 5: added p50 at one connection, ms, at most. */
  addedP50Ms: { REST: { 'portcullis-strict': 0.3, 'portcullis-relaxed': 0.15 }, MCP: { 'portcullis-strict': 0.5, 'portcullis-relaxed': 0.25 } },
});

/** One of issue 13's goals judged on one measured row: the figure, the bound, and whether it held. */
export interface SpeedCheck {
  readonly goal: 1 | 2 | 3 | 4 | 5;
  readonly workload: string;
  readonly connections: number;
  readonly target: TargetName;
  readonly what: string;
  readonly value: number;
  readonly bound: number;
  /** 'min': value ≥ bound; 'max': value ≤ bound. */
  readonly kind: 'min' | 'max';
  readonly met: boolean;
}

const MCP_WORKLOAD = 'MCP call 1KB';
const REST_WORKLOADS = ['GET', 'POST 1KB'];

/**
 * Checks issue 13's goals 1–5 on the rows of one run (goal 6, the tail at 1,000 calls/s, is
 * `npm run bench:audit`'s; 7 and 8 are `npm run bench:soak`'s). A goal whose rows were not
 * measured yields no check. MCP CPU is set against the bare proxy's 1 KB REST POST at the same
 * connection count: "no more than forwarding its bytes".
 */
export function speedChecks(rows: readonly Row[]): SpeedCheck[] {
  const out: SpeedCheck[] = [];
  const find = (workload: string, connections: number, target: TargetName, round?: number) =>
    rows.find((x) => x.workload === workload && x.connections === connections && x.target === target && x.round === round);
  const check = (c: Omit<SpeedCheck, 'met'>) => out.push({ ...c, met: c.kind === 'min' ? c.value >= c.bound : c.value <= c.bound });
  for (const r of rows) {
    if (r.target !== 'portcullis-strict' && r.target !== 'portcullis-relaxed') continue;
    const at = { workload: r.workload, connections: r.connections, target: r.target };
    const bare = find(r.workload, r.connections, 'bare-proxy', r.round);
    const direct = find(r.workload, r.connections, 'direct', r.round);
    const rest = REST_WORKLOADS.includes(r.workload);
    if (rest && bare && r.connections >= 16) {
      check({
        goal: 1,
        ...at,
        what: 'req/s ÷ bare proxy',
        value: r.requestsPerSecond / bare.requestsPerSecond,
        bound: SPEED_GOALS.restThroughput[r.target],
        kind: 'min',
      });
      if (r.target === 'portcullis-strict' && r.cpuUsPerRequest !== null && bare.cpuUsPerRequest)
        check({ goal: 2, ...at, what: 'CPU/call ÷ bare proxy', value: r.cpuUsPerRequest / bare.cpuUsPerRequest, bound: SPEED_GOALS.restCpu, kind: 'max' });
    }
    if (r.workload === MCP_WORKLOAD) {
      const bareRest = find('POST 1KB', r.connections, 'bare-proxy', r.round);
      if (bareRest && r.cpuUsPerRequest !== null && bareRest.cpuUsPerRequest && r.connections >= 16)
        check({
          goal: 3,
          ...at,
          what: 'CPU/call ÷ bare proxy per REST POST',
          value: r.cpuUsPerRequest / bareRest.cpuUsPerRequest,
          bound: SPEED_GOALS.mcpCpu,
          kind: 'max',
        });
      if (direct && r.target === 'portcullis-strict' && r.connections === 16)
        check({ goal: 4, ...at, what: 'req/s ÷ direct', value: r.requestsPerSecond / direct.requestsPerSecond, bound: SPEED_GOALS.mcpThroughput, kind: 'min' });
    }
    if (direct && r.connections === 1 && (rest || r.workload === MCP_WORKLOAD))
      check({
        goal: 5,
        ...at,
        what: '+p50 ms over direct',
        value: r.p50Ms - direct.p50Ms,
        bound: SPEED_GOALS.addedP50Ms[rest ? 'REST' : 'MCP'][r.target],
        kind: 'max',
      });
  }
  return out.sort((a, b) => a.goal - b.goal);
}

/** The checks as a table, with one MET / NOT MET line per goal. */
export function formatSpeedChecks(checks: readonly SpeedCheck[]): string {
  if (checks.length === 0) return '';
  const body = checks.map((c) => [
    String(c.goal),
    c.workload,
    String(c.connections),
    c.target,
    c.what,
    c.value.toFixed(3),
    `${c.kind === 'min' ? '≥' : '≤'} ${c.bound}`,
    c.met ? 'met' : 'NOT met',
  ]);
  const goals = [...new Set(checks.map((c) => c.goal))];
  const lines = goals.map((g) => {
    const mine = checks.filter((c) => c.goal === g);
    const met = mine.filter((c) => c.met).length;
    return `issue 13 goal ${g}: ${met === mine.length ? 'MET' : 'NOT MET'} (${met} of ${mine.length} rows)`;
  });
  return [table(['goal', 'workload', 'conns', 'target', 'figure', 'value', 'goal', 'verdict'], body), '', ...lines].join('\n');
}

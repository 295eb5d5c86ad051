/**
 * `npm run bench:soak`: does the gateway's memory stay flat under constant load? The real
 * strict-audit gateway (bench/gateway.ts) in front of bench/upstream.ts and its MCP server gets
 * a fixed mix of REST and MCP calls (bench/soak-load.ts: 4 GETs, 2 POSTs of 1 KB and 4 MCP
 * `tools/call` of 1 KB in every 10 calls) while MCP sessions are opened and ended throughout.
 * First the capacity of that mix is measured, closed-loop; then the soak drives it open-loop at
 * SOAK_LOAD (70%) of that capacity for SOAK_MINUTES, and records each minute: throughput,
 * p50/p99, failures, the gateway's RSS and heap (also right after a full collection, to tell
 * what is retained from garbage not yet collected), its open file descriptors and sockets
 * (/proc/PID/fd), its live MCP sessions and the audit records written.
 *
 * The layout is bench/run.ts's: load generator pinned to CPU 0, upstream and gateway sharing
 * CPU 1. The exit status is non-zero on any failed call (error, non-2xx, an MCP call not
 * echoed), when the MCP server executed fewer tool calls than were answered, when the audit
 * trail holds fewer than two records per call, or when the RSS at the last minute exceeds the
 * RSS at minute 1 by more than SOAK_MAX_RSS_GROWTH (10%). Results go to
 * bench/results/soak-<date>.json.
 *
 * Settings (environment):
 *   SOAK_MINUTES            minutes of soak (10); the RSS check compares the last to the first
 *   SOAK_LOAD               share of the measured capacity to offer (0.7)
 *   SOAK_RATE               calls per second to offer instead (0: measure capacity)
 *   SOAK_CAPACITY_SECONDS   length of the capacity measurement (10)
 *   SOAK_WORKERS            calls outstanding during the capacity measurement (32)
 *   SOAK_CONNECTIONS        connections the load generator may open (64)
 *   SOAK_SESSIONS           MCP sessions kept open (4)
 *   SOAK_SESSION_EVERY_MS   one session opened and the oldest ended this often (1000)
 *   SOAK_GC=0               do not force a full collection at each minute's reading (the
 *                           retained-heap column is then empty); the reading takes tens of ms,
 *                           after RSS and heapUsed are read
 *   SOAK_MAX_RSS_GROWTH     allowed RSS growth from minute 1 to the last (0.1)
 *   SOAK_GATEWAY_NODE_ARGS  extra Node flags for the gateway, space-separated (e.g.
 *                           --max-semi-space-size=16, to see what the young generation costs)
 *   BENCH_PIN=0             do not pin processes to CPUs
 *   BENCH_KEEP=1            keep the work directory (config, audit trail)
 */
import { mkdirSync, readdirSync, readlinkSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canPin, type Child, startChild } from './child';
import { cpuShareBetween, processCpuSeconds, sampleCpu } from './cpu-usage';
import { type MemoryReply, ROUTE_PREFIX, type StatsReply } from './gateway';
import { MCP_PATH, type McpStatsReply } from './mcp-server';
import { describeEnvironment } from './report';
import { numberSetting, workDirectory } from './settings';
import type { CapacityJob, CapacityReply, MinuteMessage, SoakJob, SoakLoadReply } from './soak-load';
import { SAW_CREDENTIAL_HEADER } from './upstream';

const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
const AGENT_KEY = 'bench-agent-key-not-a-secret';
const UPSTREAM_TOKEN = 'bench-upstream-token-not-a-secret';
const MCP_VERSION = '2025-11-25';
const TMPFS_MAGIC = 0x01021994;

const settings = {
  minutes: Math.max(1, Math.round(numberSetting('SOAK_MINUTES', 10))),
  load: numberSetting('SOAK_LOAD', 0.7),
  rate: numberSetting('SOAK_RATE', 0),
  capacitySeconds: numberSetting('SOAK_CAPACITY_SECONDS', 10),
  workers: Math.max(1, numberSetting('SOAK_WORKERS', 32)),
  connections: Math.max(1, numberSetting('SOAK_CONNECTIONS', 64)),
  sessions: Math.max(1, numberSetting('SOAK_SESSIONS', 4)),
  sessionEveryMs: Math.max(50, numberSetting('SOAK_SESSION_EVERY_MS', 1000)),
  gc: process.env.SOAK_GC !== '0',
  maxRssGrowth: numberSetting('SOAK_MAX_RSS_GROWTH', 0.1),
  gatewayNodeArgs: (process.env.SOAK_GATEWAY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  pin: process.env.BENCH_PIN !== '0' && os.availableParallelism() >= 2 && canPin(),
  keep: process.env.BENCH_KEEP === '1',
};

/** One minute of the soak, as recorded. */
interface MinuteRow {
  readonly minute: number;
  readonly offered: number;
  readonly ok: number;
  readonly mcpOk: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly mcpP99Ms: number;
  readonly errors: number;
  readonly non2xx: Readonly<Record<string, number>>;
  readonly sessionsOpened: number;
  readonly sessionsEnded: number;
  readonly maxOutstanding: number;
  readonly rssMB: number;
  readonly heapUsedMB: number;
  readonly heapTotalMB: number;
  readonly externalMB: number;
  readonly retainedHeapMB: number | null;
  readonly fds: number;
  readonly sockets: number;
  readonly gatewaySessions: number;
  readonly auditRecords: number;
  /** V8's heap spaces at the reading (before any forced collection), MB reserved / used. */
  readonly spacesMB: Readonly<Record<string, { readonly size: number; readonly used: number }>>;
  /** Gateway CPU over the minute, in cores. */
  readonly gatewayCores: number | null;
  /** Cores used by processes outside the benchmark over the minute. */
  readonly foreignCores: number | null;
}

function fail(message: string): never {
  throw new Error(`soak invalid: ${message}`);
}

/** Open file descriptors of `pid`, and how many of them are sockets. */
function descriptors(pid: number): { fds: number; sockets: number } {
  const dir = `/proc/${pid}/fd`;
  let fds = 0;
  let sockets = 0;
  for (const fd of readdirSync(dir)) {
    try {
      fds++;
      if (readlinkSync(path.join(dir, fd)).startsWith('socket:')) sockets++;
    } catch {
      /* closed between the listing and the read */
    }
  }
  return { fds, sockets };
}

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

/** Checks the gateway by hand before any load: a deny or a missing credential must not pass as speed. */
async function preflight(gateway: string): Promise<void> {
  const auth = { authorization: `Bearer ${AGENT_KEY}` };
  const get = await fetch(`${gateway}${ROUTE_PREFIX}items`, { headers: auth });
  await get.text();
  if (get.status !== 200 || get.headers.get(SAW_CREDENTIAL_HEADER) !== '1') fail(`GET answered ${get.status} without the route credential injected`);
  const denied = await fetch(`${gateway}${ROUTE_PREFIX}items`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{"kind":"other","text":""}',
  });
  await denied.text();
  if (denied.status !== 403) fail(`a POST the policy forbids answered ${denied.status}, expected 403`);
}

async function main(): Promise<void> {
  const environment = describeEnvironment(ROOT, process.env.PORTCULLIS_OPA ?? 'opa');
  const work = workDirectory('portcullis-soak-', settings.keep);
  const auditFilesystem = statfsSync(work).type === TMPFS_MAGIC ? 'tmpfs' : 'disk';
  const children: Child[] = [];
  try {
    const cpu = (n: number) => (settings.pin ? n : null);
    const started = async (pending: Promise<Child>) => {
      const child = await pending;
      children.push(child);
      return child;
    };
    const upstream = await started(startChild({ script: 'upstream', name: 'upstream', cpu: cpu(1), env: { BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN } }));
    const [gateway, load] = await Promise.all([
      started(
        startChild({
          script: 'gateway',
          name: 'portcullis-strict',
          cpu: cpu(1),
          env: {
            BENCH_UPSTREAM_URL: upstream.url,
            BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN,
            BENCH_AGENT_KEY: AGENT_KEY,
            BENCH_DURABILITY: 'strict',
            BENCH_WORK_DIR: path.join(work, 'strict'),
          },
          execArgv: [...(settings.gc ? ['--expose-gc'] : []), ...settings.gatewayNodeArgs],
        }),
      ),
      started(startChild({ script: 'soak-load', name: 'load generator', cpu: cpu(0) })),
    ]);
    const gatewayPid = gateway.process.pid as number;
    await preflight(gateway.url);

    const target = {
      origin: gateway.url,
      agentKey: AGENT_KEY,
      restPath: `${ROUTE_PREFIX}items`,
      mcpPath: MCP_PATH,
      mcpVersion: MCP_VERSION,
      sessions: settings.sessions,
      sessionEveryMs: settings.sessionEveryMs,
      connections: settings.connections,
    };
    const toolCalls = async () => (await upstream.ask<McpStatsReply>({ type: 'mcp-stats' })).toolCalls;
    const audited = async () => (await gateway.ask<StatsReply>({ type: 'stats' })).auditSeq;
    const memory = (collect: boolean) => gateway.ask<MemoryReply>({ type: 'memory', collect });
    const before = await memory(settings.gc);

    let capacity: CapacityReply | null = null;
    let rate = settings.rate;
    if (rate === 0) {
      process.stderr.write(`soak: measuring capacity, closed loop, ${settings.workers} calls outstanding, ${settings.capacitySeconds} s\n`);
      const reply = await load.ask<SoakLoadReply>({
        type: 'capacity',
        ...target,
        workers: settings.workers,
        seconds: settings.capacitySeconds,
      } satisfies CapacityJob);
      if (reply.type !== 'capacity') fail(`capacity measurement: ${reply.type === 'error' ? reply.message : reply.type}`);
      capacity = reply;
      const failures = reply.errors + Object.values(reply.non2xx).reduce((a, b) => a + b, 0);
      if (failures > 0) fail(`capacity measurement: ${reply.errors} errors, non-2xx ${JSON.stringify(reply.non2xx)}`);
      rate = Math.floor(reply.perSecond * settings.load);
      process.stderr.write(
        `soak: capacity ${Math.round(reply.perSecond)} calls/s (p50 ${reply.latency.p50Ms.toFixed(2)} ms); offering ${rate} calls/s for ${settings.minutes} min\n`,
      );
    }
    const afterCapacity = await memory(settings.gc);

    const own = [process.pid, ...children.map((c) => c.process.pid as number)];
    let last = { machine: sampleCpu(own), gateway: processCpuSeconds(gatewayPid), audit: await audited(), at: Date.now() };
    const toolCallsBefore = await toolCalls();
    const rows: MinuteRow[] = [];
    let maxSendLagMs = 0;
    let loadError: string | null = null;
    const header = 'min  calls/s  p50 ms  p99 ms  errors  RSS MB  heapUsed MB  retained MB  fds  sockets  sessions  audit records';
    process.stderr.write(`${header}\n`);
    await new Promise<void>((resolve, reject) => {
      let chain = Promise.resolve();
      const onMessage = (m: SoakLoadReply) => {
        chain = chain.then(async () => {
          if (m.type === 'error') loadError = m.message;
          if (m.type === 'done') maxSendLagMs = m.maxSendLagMs;
          if (m.type === 'minute') rows.push(await record(m));
          if (m.type === 'done' || m.type === 'error') {
            load.process.off('message', onMessage);
            resolve();
          }
        }, reject);
      };
      const record = async (m: MinuteMessage): Promise<MinuteRow> => {
        const mem = await memory(false);
        const d = descriptors(gatewayPid);
        const now = { machine: sampleCpu(own), gateway: processCpuSeconds(gatewayPid), audit: await audited(), at: Date.now() };
        const retained = settings.gc ? (await memory(true)).retainedHeap : null;
        const seconds = (now.at - last.at) / 1000;
        const row: MinuteRow = {
          minute: m.minute,
          offered: m.offered,
          ok: m.ok,
          mcpOk: m.mcpOk,
          perSecond: m.ok / 60,
          p50Ms: m.latency.p50Ms,
          p99Ms: m.latency.p99Ms,
          mcpP99Ms: m.mcpLatency.p99Ms,
          errors: m.errors,
          non2xx: m.non2xx,
          sessionsOpened: m.sessionsOpened,
          sessionsEnded: m.sessionsEnded,
          maxOutstanding: m.maxOutstanding,
          rssMB: mb(mem.rss),
          heapUsedMB: mb(mem.heapUsed),
          heapTotalMB: mb(mem.heapTotal),
          externalMB: mb(mem.external),
          retainedHeapMB: retained === null ? null : mb(retained),
          fds: d.fds,
          sockets: d.sockets,
          gatewaySessions: mem.mcpSessions,
          spacesMB: Object.fromEntries(Object.entries(mem.spaces).map(([k, v]) => [k, { size: mb(v.size), used: mb(v.used) }])),
          auditRecords: now.audit - last.audit,
          gatewayCores: now.gateway !== null && last.gateway !== null ? (now.gateway - last.gateway) / seconds : null,
          foreignCores: now.machine && last.machine ? cpuShareBetween(last.machine, now.machine).foreignCores : null,
        };
        last = now;
        process.stderr.write(`${formatRow(row)}\n`);
        return row;
      };
      load.process.on('message', onMessage);
      load.process.once('exit', () => reject(new Error('the load generator died')));
      load.process.send({ type: 'soak', ...target, ratePerSecond: rate, minutes: settings.minutes } satisfies SoakJob);
    });
    if (loadError) fail(`load generator: ${loadError}`);

    // The verdicts.
    const failures: string[] = [];
    if (gateway.process.exitCode !== null || gateway.process.signalCode !== null) failures.push('the gateway died');
    for (const r of rows) {
      const bad = Object.entries(r.non2xx);
      if (r.errors > 0 || bad.length > 0)
        failures.push(`minute ${r.minute}: ${r.errors} errors${bad.length ? `, ${bad.map(([k, v]) => `${v} × ${k}`).join(', ')}` : ''}`);
    }
    // An MCP deny is answered 200 too: every call counted must have reached the server.
    const executed = (await toolCalls()) - toolCallsBefore;
    const answered = rows.reduce((n, r) => n + r.mcpOk, 0);
    if (executed < answered) failures.push(`${answered} MCP calls answered but the MCP server executed ${executed}`);
    const records = rows.reduce((n, r) => n + r.auditRecords, 0);
    const calls = rows.reduce((n, r) => n + r.ok, 0);
    if (records < 2 * calls) failures.push(`${records} audit records for ${calls} calls`);
    const first = rows[0];
    const lastRow = rows[rows.length - 1];
    const rssGrowth = lastRow.rssMB / first.rssMB - 1;
    const retainedGrowth = first.retainedHeapMB && lastRow.retainedHeapMB ? lastRow.retainedHeapMB / first.retainedHeapMB - 1 : null;
    if (rows.length > 1 && rssGrowth > settings.maxRssGrowth)
      failures.push(
        `RSS grew ${(rssGrowth * 100).toFixed(1)}% from minute 1 (${first.rssMB} MB) to minute ${lastRow.minute} (${lastRow.rssMB} MB), more than ${settings.maxRssGrowth * 100}%`,
      );

    const date = new Date().toISOString();
    const report = {
      date,
      settings: { ...settings, rate },
      environment: { ...environment, auditFilesystem },
      capacity: capacity && { perSecond: capacity.perSecond, seconds: capacity.seconds, latency: capacity.latency, mcpLatency: capacity.mcpLatency },
      memoryAtStart: { rssMB: mb(before.rss), heapUsedMB: mb(before.heapUsed), retainedHeapMB: before.retainedHeap === null ? null : mb(before.retainedHeap) },
      memoryAfterCapacity: {
        rssMB: mb(afterCapacity.rss),
        heapUsedMB: mb(afterCapacity.heapUsed),
        retainedHeapMB: afterCapacity.retainedHeap === null ? null : mb(afterCapacity.retainedHeap),
      },
      minutes: rows,
      rssGrowth,
      retainedGrowth,
      maxSendLagMs,
      toolCalls: { answered, executed },
      failures,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `soak-${date.slice(0, 10)}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    const e = environment;
    process.stdout.write(
      [
        '',
        `Portcullis soak, ${date}`,
        `${e.cpus} × ${e.cpuModel}, ${e.memoryGiB} GiB, ${e.kernel}; Node ${e.node}, OPA ${e.opa}, undici ${e.undici}, MCP SDK ${e.mcpSdk}`,
        `strict audit on ${auditFilesystem}; ${settings.pin ? 'load on CPU 0, upstream + gateway on CPU 1' : 'unpinned'}; ` +
          `${capacity ? `capacity ${Math.round(capacity.perSecond)} calls/s, ` : ''}offered ${rate} calls/s; ${settings.sessions} MCP sessions, one replaced every ${settings.sessionEveryMs} ms`,
        '',
        header,
        ...rows.map(formatRow),
        '',
        `RSS minute 1 → ${lastRow.minute}: ${first.rssMB} → ${lastRow.rssMB} MB (${rssGrowth >= 0 ? '+' : ''}${(rssGrowth * 100).toFixed(1)}%)` +
          (retainedGrowth === null
            ? ''
            : `; retained heap ${first.retainedHeapMB} → ${lastRow.retainedHeapMB} MB (${retainedGrowth >= 0 ? '+' : ''}${(retainedGrowth * 100).toFixed(1)}%)`),
        ...failures.map((f) => `FAILED: ${f}`),
        `results written to ${path.relative(process.cwd(), file)}`,
        '',
      ].join('\n'),
    );
    if (failures.length > 0) process.exitCode = 1;
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    if (!settings.keep) rmSync(work, { recursive: true, force: true });
  }
}

function formatRow(r: MinuteRow): string {
  const failed = r.errors + Object.values(r.non2xx).reduce((a, b) => a + b, 0);
  return [
    String(r.minute).padStart(3),
    r.perSecond.toFixed(0).padStart(8),
    r.p50Ms.toFixed(2).padStart(7),
    r.p99Ms.toFixed(2).padStart(7),
    String(failed).padStart(7),
    r.rssMB.toFixed(1).padStart(7),
    r.heapUsedMB.toFixed(1).padStart(12),
    (r.retainedHeapMB === null ? '-' : r.retainedHeapMB.toFixed(1)).padStart(12),
    String(r.fds).padStart(4),
    String(r.sockets).padStart(8),
    String(r.gatewaySessions).padStart(9),
    String(r.auditRecords).padStart(14),
  ].join(' ');
}

main().catch((err: unknown) => {
  process.stderr.write(`\n${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

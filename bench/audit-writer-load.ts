/**
 * The audit writer on its own, in its own process: the real JsonlAuditWriter (openAuditWriter)
 * on the real disk, fed realistic decision records. Two jobs:
 *
 * - throughput: a fixed number of producers each append a record and wait for it to be
 *   durable, then append the next (a gateway with that many calls waiting on their decision
 *   record); measures durable records per second and how records were grouped into batches.
 * - rate: records arrive at a constant rate (open loop, bench/open-loop.ts); measures each
 *   append's latency from its due time to its promise resolving, strict against relaxed:
 *   the difference is what group commit's fdatasync adds.
 *
 * Batches and syncs are counted by wrapping fs.writeSync and fs.fdatasync *before* the writer
 * module is loaded: it binds `promisify(fs.fdatasync)` at load time and writes each batch with
 * one positional writeSync (a short write would count twice; on a local disk there are none).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { generateSignerKey, parseSignerKey } from '../src/audit/signed-note';
import { serveChild } from './child';
import { LatencySample, type LatencySummary } from './latency-sample';
import { runOpenLoop } from './open-loop';

const counters = { writes: 0, syncs: 0 };
{
  const writeSync = fs.writeSync;
  const fdatasync = fs.fdatasync;
  (fs as { writeSync: unknown }).writeSync = function (this: unknown, ...args: unknown[]) {
    counters.writes++;
    return (writeSync as (...a: unknown[]) => number).apply(this, args);
  };
  (fs as { fdatasync: unknown }).fdatasync = function (this: unknown, ...args: unknown[]) {
    counters.syncs++;
    return (fdatasync as (...a: unknown[]) => void).apply(this, args);
  };
}
// Loaded only now, so that it sees the counting wrappers.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { openAuditWriter } = require('../src/audit/writer') as typeof import('../src/audit/writer');
type DecisionRecord = import('../src/audit/record').DecisionRecord;

/** Measure how many records per second the writer makes durable with `inFlight` waiting producers. */
export interface ThroughputJob {
  readonly type: 'throughput';
  readonly dir: string;
  readonly durability: 'strict' | 'relaxed';
  readonly inFlight: number;
  /** Records to append (the run stops earlier after maxSeconds). */
  readonly records: number;
  readonly maxSeconds: number;
}

/** Measure append latency at a constant arrival rate. */
export interface RateJob {
  readonly type: 'rate';
  readonly dir: string;
  readonly durability: 'strict' | 'relaxed';
  readonly ratePerSecond: number;
  readonly warmupSeconds: number;
  readonly seconds: number;
}

/** Batching as seen from the file: one write per batch, one fdatasync per strict batch. */
export interface Batching {
  readonly batches: number;
  readonly fdatasyncs: number;
  readonly recordsPerBatch: number;
}

/** The answer to a ThroughputJob. */
export interface ThroughputResult extends Batching {
  readonly type: 'throughput';
  readonly records: number;
  readonly seconds: number;
  readonly recordsPerSecond: number;
  /** Bytes per line, newline included. */
  readonly bytesPerRecord: number;
  /** Append to durable, per record. */
  readonly append: LatencySummary;
}

/** The answer to a RateJob. */
export interface RateResult extends Batching {
  readonly type: 'rate';
  /** Measured appends that were made durable. */
  readonly completed: number;
  readonly failed: number;
  readonly maxSendLagMs: number;
  /** From each append's due time to its promise resolving. */
  readonly latency: LatencySummary;
}

/** What the writer child answers. */
export type WriterReply = ThroughputResult | RateResult | { readonly type: 'error'; readonly message: string };

const REVISION = `sha256:${'3f'.repeat(32)}`;

/** A decision record shaped like the gateway's for an allowed GET (about 420 bytes a line). */
function decision(n: number): DecisionRecord {
  return {
    type: 'decision',
    time: new Date().toISOString(),
    decision_id: randomUUID(),
    agent: 'bench-bot',
    route: 'bench',
    method: 'GET',
    path: `/items/${n}`,
    decision: 'allow',
    reasons: ['bench-bot reads items'],
    policy_revision: REVISION,
    credential: 'upstream-token',
  };
}

function batching(before: typeof counters, records: number): Batching {
  const batches = counters.writes - before.writes;
  return { batches, fdatasyncs: counters.syncs - before.syncs, recordsPerBatch: batches ? records / batches : 0 };
}

/** Checkpoints are signed as in production (every 10,000 records and at close). */
const SIGNER = parseSignerKey(generateSignerKey('portcullis-bench/audit'));

async function throughput(job: ThroughputJob): Promise<ThroughputResult> {
  const writer = await openAuditWriter({ dir: job.dir, durability: job.durability, signer: SIGNER });
  const latencies = new LatencySample();
  let issued = 0;
  let done = 0;
  const before = { ...counters };
  const started = performance.now();
  const deadline = started + job.maxSeconds * 1000;
  const producer = async () => {
    while (issued < job.records && performance.now() < deadline) {
      const t = performance.now();
      issued++;
      await writer.append(decision(issued));
      latencies.add(performance.now() - t);
      done++;
    }
  };
  await Promise.all(Array.from({ length: job.inFlight }, producer));
  const seconds = (performance.now() - started) / 1000;
  const counted = batching(before, done);
  await writer.close();
  const bytes = fs
    .readdirSync(job.dir)
    .filter((f) => f.endsWith('.jsonl'))
    .reduce((sum, f) => sum + fs.statSync(`${job.dir}/${f}`).size, 0);
  return {
    type: 'throughput',
    records: done,
    seconds,
    recordsPerSecond: done / seconds,
    bytesPerRecord: bytes / done,
    append: latencies.summary(),
    ...counted,
  };
}

async function rate(job: RateJob): Promise<RateResult> {
  const writer = await openAuditWriter({ dir: job.dir, durability: job.durability, signer: SIGNER });
  const latencies = new LatencySample();
  const pending: Promise<void>[] = [];
  let failed = 0;
  let n = 0;
  let measuredFrom: typeof counters | null = null;
  let measuredAppends = 0;
  const schedule = await runOpenLoop({
    ratePerSecond: job.ratePerSecond,
    warmupSeconds: job.warmupSeconds,
    seconds: job.seconds,
    fire(dueMs, measured) {
      if (measured && !measuredFrom) measuredFrom = { ...counters };
      if (measured) measuredAppends++;
      const p = writer.append(decision(n++)).then(
        () => {
          if (measured) latencies.add(performance.now() - dueMs);
        },
        () => {
          if (measured) failed++;
        },
      );
      if (measured) pending.push(p);
    },
  });
  await Promise.all(pending);
  const counted = batching(measuredFrom ?? counters, measuredAppends);
  await writer.close();
  return { type: 'rate', completed: latencies.count, failed, maxSendLagMs: schedule.maxSendLagMs, latency: latencies.summary(), ...counted };
}

if (require.main === module) {
  process.on('message', (m: ThroughputJob | RateJob) => {
    const run = m?.type === 'throughput' ? throughput(m) : m?.type === 'rate' ? rate(m) : null;
    if (!run) return;
    run.then(
      (result) => process.send?.(result satisfies WriterReply),
      (err: Error) => process.send?.({ type: 'error', message: err.message } satisfies WriterReply),
    );
  });
  serveChild('', async () => undefined);
}

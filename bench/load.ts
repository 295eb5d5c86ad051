/**
 * The load generator, in its own process: runs autocannon against one target for a warm-up
 * and then a measured period, and answers with throughput, latency percentiles and every
 * kind of failure. Latencies are recorded here at 1 µs resolution because autocannon's own
 * histogram keeps whole milliseconds, too coarse to tell whether a proxy adds 0.3 ms or 0.9 ms.
 */
import autocannon from 'autocannon';
import { serveChild } from './child';

/** One measured run, sent by the orchestrator. */
export interface LoadJob {
  readonly type: 'run';
  readonly url: string;
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: string;
  /** Replace `[<id>]` in the body with a fresh id on every request (MCP: JSON-RPC ids must not repeat). */
  readonly idReplacement?: boolean;
  readonly connections: number;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
}

/** What a run measured. Latencies in milliseconds. */
export interface LoadResult {
  readonly type: 'result';
  /** 2xx answers in the measured period. */
  readonly requests: number;
  /** 2xx answers during the warm-up (they reach the audit trail too). */
  readonly warmupRequests: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Connection errors (resets, refusals), warm-up included. */
  readonly errors: number;
  /** Requests that timed out, warm-up included. */
  readonly timeouts: number;
  /** Responses with a status outside 2xx, by status, warm-up included. */
  readonly non2xx: Readonly<Record<string, number>>;
}

/** The load generator's answer to a LoadJob. */
export type LoadReply = LoadResult | { readonly type: 'error'; readonly message: string };

/** Counts latencies in 1 µs buckets up to ~1 s (longer ones land in the last bucket). */
export class LatencyRecorder {
  private readonly buckets = new Uint32Array(1 << 20);
  private total = 0;

  /** Records one latency given in milliseconds. */
  record(ms: number): void {
    const us = Math.min(Math.round(ms * 1000), this.buckets.length - 1);
    this.buckets[us]++;
    this.total++;
  }

  /** The latency (ms) below which `p` percent of the recorded ones fall. */
  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let us = 0; us < this.buckets.length; us++) {
      seen += this.buckets[us];
      if (seen >= rank) return us / 1000;
    }
    return (this.buckets.length - 1) / 1000;
  }
}

function attack(job: LoadJob, seconds: number, latencies: LatencyRecorder | null): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: job.url,
        method: job.method,
        headers: job.headers,
        body: job.body,
        idReplacement: job.idReplacement,
        connections: job.connections,
        duration: seconds,
        timeout: 10,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (latencies) {
      instance.on('response', (_client, status, _bytes, ms) => {
        if (status >= 200 && status < 300) latencies.record(ms);
      });
    }
  });
}

/** Warms the target up, then measures it. */
export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const warmup = job.warmupSeconds > 0 ? await attack(job, job.warmupSeconds, null) : null;
  const latencies = new LatencyRecorder();
  const r = await attack(job, job.durationSeconds, latencies);
  const non2xx: Record<string, number> = {};
  for (const run of warmup ? [warmup, r] : [r]) {
    for (const [status, { count }] of Object.entries(run.statusCodeStats)) if (!status.startsWith('2')) non2xx[status] = (non2xx[status] ?? 0) + count;
  }
  return {
    type: 'result',
    requests: r['2xx'],
    warmupRequests: warmup?.['2xx'] ?? 0,
    seconds: r.duration,
    requestsPerSecond: r['2xx'] / r.duration,
    p50Ms: latencies.percentile(50),
    p99Ms: latencies.percentile(99),
    errors: r.errors + (warmup?.errors ?? 0),
    timeouts: r.timeouts + (warmup?.timeouts ?? 0),
    non2xx,
  };
}

if (require.main === module) {
  process.on('message', (m: LoadJob) => {
    if (m?.type !== 'run') return;
    runLoad(m).then(
      (result) => process.send?.(result satisfies LoadReply),
      (err: Error) => process.send?.({ type: 'error', message: err.message } satisfies LoadReply),
    );
  });
  serveChild('', async () => undefined);
}

/**
 * The constant-rate HTTP load generator, in its own process (pinned to its own CPU by the
 * orchestrator): sends requests on the open-loop schedule of bench/open-loop.ts through an
 * undici Pool and measures each one from its due time to the end of its answer's body. When a
 * target cannot keep up, requests queue (in the pool, then in the target) and the queueing is
 * measured, as a real client at that arrival rate would suffer it.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { serveChild } from './child';
import { LatencySample, type LatencySummary } from './latency-sample';
import { runOpenLoop } from './open-loop';

/** One measured run, sent by the orchestrator. */
export interface RateLoadJob {
  readonly type: 'run';
  /** Origin and path, e.g. http://127.0.0.1:1234/api/items */
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly ratePerSecond: number;
  readonly warmupSeconds: number;
  readonly seconds: number;
  /** Connections the pool may open (requests beyond them wait in the pool's queue). */
  readonly connections: number;
}

/** What a run measured. Latencies in milliseconds. */
export interface RateLoadResult {
  readonly type: 'result';
  /** Requests due in the measured period. */
  readonly offered: number;
  /** Of those, answered 2xx. */
  readonly ok: number;
  /** 2xx answers per second over the time the measured requests took to complete. */
  readonly achievedPerSecond: number;
  readonly errors: number;
  /** Answers outside 2xx by status, warm-up included. */
  readonly non2xx: Readonly<Record<string, number>>;
  readonly maxSendLagMs: number;
  /** Most requests outstanding at once. */
  readonly maxOutstanding: number;
  /** Due time to end of body, 2xx answers in the measured period. */
  readonly latency: LatencySummary;
}

/** The load generator's answer. */
export type RateLoadReply = RateLoadResult | { readonly type: 'error'; readonly message: string };

/** Runs one job. */
export async function runRateLoad(job: RateLoadJob): Promise<RateLoadResult> {
  const url = new URL(job.url);
  const pool = new Pool(url.origin, { connections: job.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const latencies = new LatencySample();
  const non2xx: Record<string, number> = {};
  const pending: Promise<void>[] = [];
  let errors = 0;
  let outstanding = 0;
  let maxOutstanding = 0;
  let firstDue = Infinity;
  let lastDone = 0;
  try {
    const schedule = await runOpenLoop({
      ratePerSecond: job.ratePerSecond,
      warmupSeconds: job.warmupSeconds,
      seconds: job.seconds,
      fire(dueMs, measured) {
        outstanding++;
        maxOutstanding = Math.max(maxOutstanding, outstanding);
        if (measured) firstDue = Math.min(firstDue, dueMs);
        const p = pool
          .request({ path: url.pathname, method: 'GET', headers: job.headers })
          .then(async (res) => {
            await res.body.dump();
            const end = performance.now();
            if (res.statusCode < 200 || res.statusCode >= 300) non2xx[res.statusCode] = (non2xx[res.statusCode] ?? 0) + 1;
            else if (measured) {
              latencies.add(end - dueMs);
              lastDone = Math.max(lastDone, end);
            }
          })
          .catch(() => {
            errors++;
          })
          .finally(() => outstanding--);
        if (measured) pending.push(p);
      },
    });
    await Promise.all(pending);
    return {
      type: 'result',
      offered: schedule.measured,
      ok: latencies.count,
      achievedPerSecond: latencies.count / ((lastDone - firstDue) / 1000),
      errors,
      non2xx,
      maxSendLagMs: schedule.maxSendLagMs,
      maxOutstanding,
      latency: latencies.summary(),
    };
  } finally {
    await pool.close();
  }
}

if (require.main === module) {
  process.on('message', (m: RateLoadJob) => {
    if (m?.type !== 'run') return;
    runRateLoad(m).then(
      (result) => process.send?.(result satisfies RateLoadReply),
      (err: Error) => process.send?.({ type: 'error', message: err.message } satisfies RateLoadReply),
    );
  });
  serveChild('', async () => undefined);
}

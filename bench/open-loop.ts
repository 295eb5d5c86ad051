/**
 * A constant-rate (open-loop) scheduler. Call i is due at start + i / rate whether or not
 * earlier calls have been answered, and its latency is measured from that due time, not from
 * when it was actually sent. A closed-loop client (autocannon) waits for an answer before its
 * next request, so a stall delays the requests that would have measured it: "coordinated
 * omission". Measuring from the due time charges both a slow target and a late sender.
 *
 * The scheduler spins on setImmediate so sends leave within microseconds of their due time
 * (timers fire at 1 ms granularity, five calls late at 5,000/s); it costs the process a core.
 */
import { performance } from 'node:perf_hooks';

/** What to schedule. */
export interface OpenLoopOptions {
  readonly ratePerSecond: number;
  /** Calls before the measured ones, at the same rate (not measured). */
  readonly warmupSeconds: number;
  readonly seconds: number;
  /**
   * Starts call i, due at `dueMs` (performance.now() time); `measured` is false during warm-up.
   * Must not block: the call's completion is the caller's to observe.
   */
  fire(dueMs: number, measured: boolean): void;
}

/** How faithfully the schedule was kept. */
export interface OpenLoopResult {
  /** Calls started, warm-up included. */
  readonly fired: number;
  /** Calls started in the measured period. */
  readonly measured: number;
  /** Largest delay between a call's due time and its start, ms. */
  readonly maxSendLagMs: number;
}

/** Runs the schedule; resolves when the last call has been started (not answered). */
export function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const intervalMs = 1000 / options.ratePerSecond;
  const warmup = Math.round(options.ratePerSecond * options.warmupSeconds);
  const total = warmup + Math.round(options.ratePerSecond * options.seconds);
  const start = performance.now() + 1;
  let i = 0;
  let maxSendLagMs = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < total) {
        const due = start + i * intervalMs;
        if (due > now) break;
        maxSendLagMs = Math.max(maxSendLagMs, now - due);
        options.fire(due, i >= warmup);
        i++;
      }
      if (i < total) setImmediate(tick);
      else resolve({ fired: total, measured: total - warmup, maxSendLagMs });
    };
    setImmediate(tick);
  });
}

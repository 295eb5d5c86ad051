/**
 * One sink's delivery loop, independent of the request path: read a batch after the persisted
 * position (TrailFollower), hand it to the sink, and only once the receiver acknowledged it,
 * persist the position after it. A failed attempt is retried with capped exponential back-off,
 * forever: records are never dropped, and a dead receiver only makes the sink lag (the trail on
 * disk is the buffer). The audit writer knows nothing about this loop; it polls the files, and
 * `nudge()` lets a caller wake it early.
 */
import { SINK_SCHEMAS } from '../../config/schema';
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Counter, Gauge } from 'prom-client';
import type { RecordSink } from './record-sink';
import { readPosition, writePosition, offsetDir, type TrailPosition } from './sink-offset';
import { TrailFollower, type BatchLimits, type TrailBatch } from './trail-follower';

/** What the runner reports for metrics and health. */
export interface SinkStatus {
  readonly name: string;
  /** Seq of the last record the receiver acknowledged (0 before the first). */
  readonly deliveredSeq: number;
  /** Durable records not yet acknowledged. */
  readonly lagRecords: number;
  /** Failed attempts since the last success. */
  readonly consecutiveFailures: number;
  /** The last failure's message (safe to log), null once an attempt succeeds again. */
  readonly lastError: string | null;
  readonly state: 'starting' | 'idle' | 'delivering' | 'retrying' | 'stopped';
}

/** The metrics a runner updates (src/observability/metrics.ts). */
export interface SinkMetrics {
  readonly deliveredSeq: Gauge<'sink'>;
  readonly lagRecords: Gauge<'sink'>;
  readonly errors: Counter<'sink'>;
}

/** Options of a SinkRunner. */
export interface SinkRunnerOptions {
  readonly sink: RecordSink;
  readonly auditDir: string;
  /** The writer's last durable seq: nothing after it is shipped. */
  readonly durableSeq: () => number;
  readonly log: Logger;
  readonly metrics?: SinkMetrics;
  readonly limits?: BatchLimits;
  /** How often the files are checked for new records. Default 200 ms. */
  readonly pollMs?: number;
  /** First retry delay. Default 250 ms. */
  readonly minBackoffMs?: number;
  /** Longest retry delay. Default 30000 ms. */
  readonly maxBackoffMs?: number;
}

/** Runs one sink. */
export class SinkRunner {
  private readonly sink: RecordSink;
  private readonly follower: TrailFollower;
  private readonly log: Logger;
  private position: TrailPosition | null = null;
  private deliveredSeq = 0;
  private failures = 0;
  private lastError: string | null = null;
  private state: SinkStatus['state'] = 'starting';
  private stopping = false;
  private draining = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;

  constructor(private readonly options: SinkRunnerOptions) {
    this.sink = options.sink;
    this.log = options.log.child({ sink: options.sink.name });
    this.follower = new TrailFollower({ dir: options.auditDir, limits: options.limits, durableSeq: options.durableSeq });
  }

  /** Starts the loop (returns at once). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Wakes the loop if it is waiting for new records (not if it is backing off). */
  nudge(): void {
    if (this.state === 'idle') this.wake?.();
  }

  /** The current status. */
  status(): SinkStatus {
    return {
      name: this.sink.name,
      deliveredSeq: this.deliveredSeq,
      lagRecords: Math.max(0, this.options.durableSeq() - this.deliveredSeq),
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      state: this.state,
    };
  }

  /**
   * Stops. A healthy sink first ships what is durable, for at most `graceMs`; a failing one
   * stops at once. The attempt in progress after the grace is aborted: its batch was not
   * acknowledged, so it is sent again after the next start.
   */
  async close(graceMs = 2000): Promise<void> {
    if (!this.loop) return;
    this.draining = true;
    if (this.failures > 0) this.stopping = true;
    this.wake?.();
    const timer = setTimeout(() => {
      this.stopping = true;
      this.wake?.();
      void this.sink.close();
    }, graceMs);
    try {
      await this.loop;
    } finally {
      clearTimeout(timer);
      await this.sink.close();
      this.state = 'stopped';
    }
  }

  /** Waits `ms`, or less when woken (nudge, close). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private backoff(): number {
    const min = this.options.minBackoffMs ?? 250;
    const max = this.options.maxBackoffMs ?? SINK_SCHEMAS.webhook.properties.max_backoff_ms.default; // every sink type shares it
    const base = Math.min(max, min * 2 ** Math.min(this.failures - 1, 30));
    return Math.round(base * (0.8 + Math.random() * 0.2));
  }

  private failed(err: unknown, what: string): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.stopping) {
      this.log.debug({ err: message }, `audit sink ${what} aborted by shutdown; it is sent again after the next start`);
      return;
    }
    this.failures++;
    this.lastError = message;
    this.options.metrics?.errors.inc({ sink: this.sink.name });
    const fields = { err: message, failures: this.failures, delivered_seq: this.deliveredSeq };
    if (this.failures === 1) this.log.error(fields, `audit sink ${what} failed; retrying with back-off, nothing is dropped`);
    else this.log.warn(fields, `audit sink ${what} failed again`);
  }

  private updateGauges(): void {
    const m = this.options.metrics;
    if (!m) return;
    m.deliveredSeq.set({ sink: this.sink.name }, this.deliveredSeq);
    m.lagRecords.set({ sink: this.sink.name }, Math.max(0, this.options.durableSeq() - this.deliveredSeq));
  }

  private async resolveStart(): Promise<TrailPosition> {
    await mkdir(offsetDir(this.options.auditDir), { recursive: true, mode: 0o750 });
    const saved = await readPosition(this.options.auditDir, this.sink.name);
    if (!saved) return this.follower.start();
    const { position, relocated } = await this.follower.resume(saved);
    if (relocated) this.log.warn({ saved, position }, 'the saved sink position no longer matches the trail; found it again by seq');
    return position;
  }

  private async run(): Promise<void> {
    const pollMs = this.options.pollMs ?? 200;
    while (!this.stopping) {
      try {
        this.position ??= await this.resolveStart();
        this.deliveredSeq = this.position.seq;
      } catch (err) {
        this.failed(err, 'start');
        this.state = 'retrying';
        if (this.draining) break;
        await this.sleep(this.backoff());
        continue;
      }
      break;
    }
    while (!this.stopping && this.position) {
      this.updateGauges();
      let batch: TrailBatch | null;
      try {
        batch = await this.follower.read(this.position);
      } catch (err) {
        this.failed(err, 'reading the trail');
        this.state = 'retrying';
        if (this.draining) break;
        await this.sleep(this.backoff());
        continue;
      }
      if (!batch) {
        if (this.draining) break;
        this.state = 'idle';
        await this.sleep(pollMs);
        continue;
      }
      this.state = 'delivering';
      try {
        await this.sink.deliver(batch.lines);
      } catch (err) {
        this.failed(err, `delivery of seq ${batch.firstSeq}..${batch.lastSeq}`);
        this.state = 'retrying';
        if (this.draining) break;
        await this.sleep(this.backoff());
        continue;
      }
      this.position = batch.end;
      this.deliveredSeq = batch.lastSeq;
      this.updateGauges();
      if (this.failures > 0) this.log.info({ failures: this.failures, delivered_seq: this.deliveredSeq }, 'audit sink delivering again');
      this.failures = 0;
      this.lastError = null;
      try {
        await writePosition(this.options.auditDir, this.sink.name, batch.end);
      } catch (err) {
        // Delivered but not recorded: after a restart these records are sent again (duplicates,
        // never a loss). The next successful write covers them.
        this.log.error({ err: (err as Error).message }, 'cannot save the audit sink position');
      }
    }
    this.updateGauges();
    this.state = 'stopped';
  }
}

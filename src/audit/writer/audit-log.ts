/**
 * The trail as the request path sees it: append a record, know whether appends succeed. The
 * JSON Lines writer (group-commit.ts) is its one implementation; a second is a new file. (The
 * shippers that copy the trail elsewhere are the "sinks": src/audit/sinks/.)
 */
import { CONFIG_SCHEMA } from '../../config/schema';
import type { AuditEvent } from '../record';
import type { NoteSigner } from '../signed-note';

export interface AuditLog {
  /**
   * Appends an event; resolves when it is durable according to the log's durability mode. `lazy` records
   * (outcomes, which nothing waits on) do not start a write of their own: they ride with the
   * next batch, or are written after LAZY_FLUSH_MS.
   */
  append(event: AuditEvent, options?: AppendOptions): Promise<void>;
  /** True until a write fails; back to true after a write succeeds again. */
  readonly healthy: boolean;
  /** Flushes and closes. */
  close(): Promise<void>;
}

/** Options of AuditLog.append. */
export interface AppendOptions {
  readonly lazy?: boolean;
}

/** Longest a lazy record waits for company before it is written on its own. */
export const LAZY_FLUSH_MS = 2;

/** Checkpoint cadence: whichever comes first. */
export interface CheckpointCadence {
  readonly everyRecords: number;
  readonly everySeconds: number;
}

/** Rotation thresholds: whichever comes first. */
export interface RotationThresholds {
  readonly maxBytes: number;
  readonly maxAgeSeconds: number;
}

const AUDIT_KEYS = CONFIG_SCHEMA.properties.audit.properties;
/** Checkpoint cadence when none is given: the config schema's defaults, the one place they are set. */
export const DEFAULT_CHECKPOINT: CheckpointCadence = Object.freeze({
  everyRecords: AUDIT_KEYS.checkpoint.properties.every_records.default,
  everySeconds: AUDIT_KEYS.checkpoint.properties.every_seconds.default,
});
/** Rotation when none is given: the config schema's defaults. */
export const DEFAULT_ROTATE: RotationThresholds = Object.freeze({
  maxBytes: AUDIT_KEYS.rotate.properties.max_bytes.default,
  maxAgeSeconds: AUDIT_KEYS.rotate.properties.max_age_seconds.default,
});

/** Zeros kept ahead of the open segment's last record when none is given: the config schema's default. */
export const DEFAULT_PREALLOCATE_BYTES: number = AUDIT_KEYS.preallocate_bytes.default;

/** Options of the JSON Lines writer. */
export interface AuditWriterOptions {
  readonly dir: string;
  readonly durability: 'strict' | 'relaxed';
  /** Signs checkpoints; its verifier key is written to audit.pub. */
  readonly signer: NoteSigner;
  /** Checkpoint cadence. Defaults: every 10,000 records or 30 seconds. */
  readonly checkpoint?: CheckpointCadence;
  /** Rotation thresholds (of the records' bytes, never of the zeros after them). Defaults: 64 MiB or 24 hours. */
  readonly rotate?: RotationThresholds;
  /**
   * Bytes of synced zeros kept ahead of the open segment's last record, so that syncs flush data
   * only (group-commit.ts). 0: append. Ignored in relaxed mode and on tmpfs. Default 1 MiB.
   */
  readonly preallocateBytes?: number;
  /** Called when a write fails or recovers (for logs, metrics and the outage record). */
  readonly onHealthChange?: (healthy: boolean, detail: HealthDetail) => void;
  /** Called after each successful write (the audit sinks follow the files; this wakes them). */
  readonly onDurable?: () => void;
  /** Wall clock for the writer's own records (tests step it backwards). */
  readonly now?: () => Date;
  /** How long to wait for the directory's lock (a previous writer still exiting). Default 3 s. */
  readonly lockWaitMs?: number;
}

/** What onHealthChange is told. */
export interface HealthDetail {
  /** The write error (on failure). */
  readonly error?: Error;
  /** When the outage began (ISO time). */
  readonly since: string;
  /** Records refused during the outage so far. */
  readonly refusedRecords: number;
}

/**
 * The contract between the sink runner and a destination. A sink receives batches of raw
 * audit lines (as in the segment files, without the newline) and resolves only when the
 * receiver has acknowledged them as far as its protocol allows; the runner persists its
 * position only after that, which is what makes delivery at-least-once. A second destination
 * is a new file implementing these three members.
 */

/** A destination for audit records. Build one with a factory that validates its options. */
export interface RecordSink {
  /** The configured name (also the offset file's name and the metrics label). */
  readonly name: string;
  /**
   * Sends a batch. Resolves when the receiver acknowledged it; rejects (with a SinkError) when
   * it did not, in which case the whole batch is sent again later. Never called concurrently.
   */
  deliver(lines: readonly string[]): Promise<void>;
  /** Aborts the attempt in progress, if any, and releases connections. */
  close(): Promise<void>;
}

/**
 * A failed delivery attempt. `message` is safe to log: it never holds a secret. Every failure
 * is retried (with back-off): dropping a record is never an option, so a receiver that refuses
 * a batch for good (a 4xx, a corrupt line) holds the sink until an operator acts, and the
 * error is logged and counted on every attempt.
 */
export class SinkError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SinkError';
  }
}

/** An audit record as far as the sinks need it: every other field passes through untouched. */
export interface SinkRecord {
  readonly seq: number;
  readonly type: string;
  readonly time?: string;
  readonly decision?: string;
  readonly [field: string]: unknown;
}

/** Parses a line; throws SinkError when it is not a JSON object with a numeric seq and a type. */
export function parseRecordLine(line: string): SinkRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new SinkError('an audit line is not valid JSON; run `portcullis audit verify`');
  }
  const rec = value as Partial<SinkRecord> | null;
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec) || typeof rec.seq !== 'number' || typeof rec.type !== 'string') {
    throw new SinkError('an audit line has no numeric seq or no type; run `portcullis audit verify`');
  }
  return rec as SinkRecord;
}

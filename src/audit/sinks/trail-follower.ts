/**
 * Reads an audit trail forward from a position, the way `tail -F` would but exactly: complete
 * lines only (a line is complete when its `\n` is on disk; the writer may be mid-write on the
 * last one), segment after segment in name order, and never past the writer's last durable
 * record. The last rule matters: the writer puts a batch in the file before its fdatasync, and
 * if the sync fails it cuts the batch off and reuses those seq numbers, so a record read early
 * could be shipped and then replaced by a different record with the same seq.
 *
 * The newest segment of a strict writer ends in zeros written ahead of its records (its
 * preallocation): the content of a file ends at its first NUL byte, which no record holds. Reads
 * start small and grow, so that a follower at the end of the records does not copy a megabyte of
 * zeros on every wake-up.
 *
 * The follower holds no state beyond its directory and limits: the caller keeps the position
 * (src/audit/sinks/sink-runner.ts persists it after each acknowledged batch).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { TrailPosition } from './sink-offset';
import { isSegmentName } from '../segments';

/** Bounds of one batch. A single line longer than maxBytes still makes a batch of one. */
export interface BatchLimits {
  readonly maxRecords: number;
  readonly maxBytes: number;
}

/** Default batch bounds: at most 500 records or 1 MiB of lines. */
export const DEFAULT_BATCH_LIMITS: BatchLimits = Object.freeze({ maxRecords: 500, maxBytes: 1024 * 1024 });

/** A batch read from the trail. */
export interface TrailBatch {
  /** Record lines, without their newline. */
  readonly lines: readonly string[];
  /** Seq of the first and last record of the batch. */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** The position after the batch: where to continue once it is delivered. */
  readonly end: TrailPosition;
}

/** Options of a TrailFollower. */
export interface TrailFollowerOptions {
  readonly dir: string;
  readonly limits?: BatchLimits;
  /**
   * The seq of the writer's last durable record; records after it are not read yet. Omit when
   * no writer runs in this process (the files are then complete up to their last newline).
   */
  readonly durableSeq?: () => number;
}

const SEQ_PREFIX = /^\{"seq":(\d+)[,}]/;
const NEWLINE = 0x0a;
/** The first read of a batch; grown while the bytes read are all records and more are wanted. */
const FIRST_READ_BYTES = 16 * 1024;

/** A problem with the trail itself (not with a receiver): corrupt line, missing file. */
export class TrailReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrailReadError';
  }
}

/** The seq of a record line, read from its prefix (the writer always puts seq first). */
export function seqOfLine(line: string, where: string): number {
  const m = SEQ_PREFIX.exec(line);
  if (!m) throw new TrailReadError(`${where}: the line does not start with a seq; run \`portcullis audit verify\``);
  return Number(m[1]);
}

function countLines(data: Buffer, lastNewline: number): number {
  let n = 0;
  for (let at = data.indexOf(NEWLINE); at !== -1 && at <= lastNewline; at = data.indexOf(NEWLINE, at + 1)) n++;
  return n;
}

/** Reads a trail forward. */
export class TrailFollower {
  private readonly dir: string;
  private readonly limits: BatchLimits;
  private readonly durableSeq: (() => number) | undefined;

  constructor(options: TrailFollowerOptions) {
    const limits = options.limits ?? DEFAULT_BATCH_LIMITS;
    if (!Number.isInteger(limits.maxRecords) || limits.maxRecords < 1) throw new TypeError('maxRecords must be a positive integer');
    if (!Number.isInteger(limits.maxBytes) || limits.maxBytes < 1) throw new TypeError('maxBytes must be a positive integer');
    this.dir = options.dir;
    this.limits = limits;
    this.durableSeq = options.durableSeq;
  }

  /** Segment file names, oldest first. */
  async segments(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.dir)).filter(isSegmentName).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** The position before the first record of the trail. */
  async start(): Promise<TrailPosition> {
    const segments = await this.segments();
    return { segment: segments[0] ?? 'audit-00000001.jsonl', offset: 0, seq: 0 };
  }

  /**
   * Checks a persisted position against the files: its segment exists, its offset is within it
   * and the line there (if any) is the record after `seq`. When it does not hold (the trail was
   * rewritten, a segment removed), the position is found again by seq; `relocated` says so.
   */
  async resume(saved: TrailPosition): Promise<{ position: TrailPosition; relocated: boolean }> {
    try {
      const next = await this.readLines(path.join(this.dir, saved.segment), saved.offset, 1, 64 * 1024);
      if (next.lines.length === 0 || seqOfLine(next.lines[0], saved.segment) === saved.seq + 1) return { position: saved, relocated: false };
    } catch {
      /* missing segment, offset past the end or inside a line: find the record by seq */
    }
    return { position: await this.locate(saved.seq), relocated: true };
  }

  /**
   * The position just after the record `seq`. Not found: when the oldest record left is the one
   * right after it, the start of the trail; when the trail ends before it (cut back, or
   * replaced), a TrailReadError; when records after `seq` are gone (segments removed before
   * this sink delivered them), a TrailReadError: skipping them would be a loss.
   */
  async locate(seq: number): Promise<TrailPosition> {
    if (seq === 0) return this.start();
    let firstSeq: number | null = null;
    for (const segment of await this.segments()) {
      const file = path.join(this.dir, segment);
      let offset = 0;
      for (;;) {
        const chunk = await this.readLines(file, offset, this.limits.maxRecords, this.limits.maxBytes);
        if (chunk.lines.length === 0) break;
        let at = offset;
        for (let i = 0; i < chunk.lines.length; i++) {
          at += chunk.bytes[i];
          const found = seqOfLine(chunk.lines[i], segment);
          firstSeq ??= found;
          if (found === seq) return { segment, offset: at, seq };
        }
        offset = at;
      }
    }
    const start = await this.start();
    if (firstSeq === seq + 1) return { ...start, seq };
    if (firstSeq !== null && firstSeq <= seq) {
      // The trail ends before the record this sink already delivered: it was cut back (e.g. a
      // power loss in relaxed mode) or replaced. Re-sending everything would duplicate, and
      // new records would reuse delivered seqs: stop and say so.
      throw new TrailReadError(
        `the trail ends before seq ${seq}, which this sink already delivered; check the trail with 'portcullis audit verify', then delete the position file to deliver from the start`,
      );
    }
    if (firstSeq !== null && firstSeq > seq + 1) {
      throw new TrailReadError(
        `records ${seq + 1}..${firstSeq - 1} are no longer in the trail; restore their segments, or delete the position file to start at seq ${firstSeq}`,
      );
    }
    return start;
  }

  /**
   * Reads the next batch after `from`, or null when nothing new is complete and durable yet.
   * Moves on to the next segment when the current one is fully read and a newer one exists.
   */
  async read(from: TrailPosition): Promise<TrailBatch | null> {
    let position = from;
    for (;;) {
      // List before reading: a newer segment that exists now means the current one is final.
      const segments = await this.segments();
      const newer = segments.find((s) => s > position.segment);
      const file = path.join(this.dir, position.segment);
      // The ceiling is taken before reading: bytes read after a failed write was cut off and
      // rewritten could otherwise pass under a ceiling that only the rewrite reached.
      const ceiling = this.durableSeq ? this.durableSeq() : Number.POSITIVE_INFINITY;
      const chunk = await this.readLines(file, position.offset, this.limits.maxRecords, this.limits.maxBytes).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' && (newer || segments.length === 0)) return { lines: [] as string[], bytes: [] as number[], size: 0 };
        throw err;
      });
      if (chunk.lines.length > 0) return this.batchOf(position, chunk.lines, chunk.bytes, ceiling);
      if (!newer) return null;
      position = { segment: newer, offset: 0, seq: position.seq };
    }
  }

  private batchOf(from: TrailPosition, lines: readonly string[], bytes: readonly number[], ceiling: number): TrailBatch | null {
    const kept: string[] = [];
    let offset = from.offset;
    let expected = from.seq + 1;
    let firstSeq = 0;
    let lastSeq = from.seq;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const seq = seqOfLine(line, from.segment);
      if (seq > ceiling) break;
      // The very first record of a trail may have any seq (older segments may be archived).
      if ((from.seq > 0 || kept.length > 0) && seq !== expected) {
        throw new TrailReadError(`${from.segment}: seq ${seq} where ${expected} was expected; run \`portcullis audit verify\``);
      }
      if (kept.length === 0) firstSeq = seq;
      kept.push(line);
      offset += bytes[i];
      lastSeq = seq;
      expected = seq + 1;
    }
    if (kept.length === 0) return null;
    return { lines: kept, firstSeq, lastSeq, end: { segment: from.segment, offset, seq: lastSeq } };
  }

  /**
   * Complete lines of `file` from `offset`, within the limits, each with its length in bytes
   * (newline included: offsets are counted on the bytes, never on re-encoded text).
   */
  private async readLines(file: string, offset: number, maxRecords: number, maxBytes: number): Promise<{ lines: string[]; bytes: number[]; size: number }> {
    const fh = await fsp.open(file, 'r');
    try {
      const { size } = await fh.stat();
      if (offset > size) throw new TrailReadError(`${path.basename(file)} is shorter (${size} bytes) than the position ${offset}`);
      let want = Math.min(size - offset, maxBytes, FIRST_READ_BYTES);
      for (;;) {
        if (want === 0) return { lines: [], bytes: [], size };
        const buf = Buffer.allocUnsafe(want);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        // The content ends at the first NUL byte: the zero tail of a preallocated segment.
        const nul = buf.subarray(0, got).indexOf(0);
        const atEnd = nul !== -1 || offset + got >= size;
        const data = buf.subarray(0, nul === -1 ? got : nul);
        const lastNewline = data.lastIndexOf(NEWLINE);
        if (lastNewline === -1) {
          // One line longer than the read: read on until its end (or give up on a partial tail).
          if (atEnd) return { lines: [], bytes: [], size };
          want = Math.min(size - offset, want * 2);
          continue;
        }
        if (!atEnd && want < maxBytes && countLines(data, lastNewline) < maxRecords) {
          // Only records so far, and room for more in this batch: read as much as it may hold.
          want = Math.min(size - offset, maxBytes);
          continue;
        }
        const lines: string[] = [];
        const bytes: number[] = [];
        let start = 0;
        while (start <= lastNewline && lines.length < maxRecords) {
          const nl = data.indexOf(NEWLINE, start);
          // A long first line was read whole; what follows it waits for the next batch.
          if (lines.length > 0 && nl + 1 > maxBytes) break;
          lines.push(data.toString('utf8', start, nl));
          bytes.push(nl + 1 - start);
          start = nl + 1;
        }
        return { lines, bytes, size };
      }
    } finally {
      await fh.close();
    }
  }
}

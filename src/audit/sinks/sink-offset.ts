/**
 * A sink's persisted position in the trail: `<audit dir>/sinks/<sink name>.offset`, JSON
 * `{"segment", "offset", "seq"}`. It is written only after the receiver acknowledged every
 * record before it, and atomically (temporary file, fsync, rename, fsync of the directory), so
 * after a crash it is either the old or the new position, never a torn one.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { replaceFileDurably } from '../durable-file';
import { isSegmentName } from '../segments';

/** Where a sink stands: the next byte to read, and the seq of the last record delivered. */
export interface TrailPosition {
  /** Segment file name, e.g. audit-00000001.jsonl. */
  readonly segment: string;
  /** Byte offset in that segment of the first line not yet delivered (always a line start). */
  readonly offset: number;
  /** Seq of the last record delivered (0 before the first). */
  readonly seq: number;
}

/** The directory holding the offset files of a trail. */
export function offsetDir(auditDir: string): string {
  return path.join(auditDir, 'sinks');
}

/** The offset file of a sink. */
export function offsetFile(auditDir: string, sinkName: string): string {
  return path.join(offsetDir(auditDir), `${sinkName}.offset`);
}

function isPosition(v: unknown): v is TrailPosition {
  const p = v as Partial<TrailPosition> | null;
  return (
    p !== null &&
    typeof p === 'object' &&
    typeof p.segment === 'string' &&
    isSegmentName(p.segment) &&
    Number.isSafeInteger(p.offset) &&
    (p.offset as number) >= 0 &&
    Number.isSafeInteger(p.seq) &&
    (p.seq as number) >= 0
  );
}

/**
 * Reads a sink's position; null when the sink never delivered anything. A file that exists but
 * does not hold a position is an error: guessing would re-send or skip records silently.
 */
export async function readPosition(auditDir: string, sinkName: string): Promise<TrailPosition | null> {
  const file = offsetFile(auditDir, sinkName);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (!isPosition(value)) throw new Error(`${file} does not hold a sink position; remove it to deliver the whole trail again`);
  return { segment: value.segment, offset: value.offset, seq: value.seq };
}

/** Writes a sink's position atomically and durably. */
export async function writePosition(auditDir: string, sinkName: string, position: TrailPosition): Promise<void> {
  const text = `${JSON.stringify({ segment: position.segment, offset: position.offset, seq: position.seq })}\n`;
  await replaceFileDurably(offsetFile(auditDir, sinkName), text);
}

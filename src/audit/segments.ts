/**
 * Segment files of a trail and the writer's start-up scan. A trail is a directory of
 * `audit-NNNNNNNN.jsonl` files; only the newest is appended to. At start-up the writer reads
 * every segment once to rebuild its chain state: the last record's seq and hash, the Merkle
 * frontier over all records, the newest segment's digest so far, the previous segment's summary
 * (for the next `segment_start`), and the key of the last checkpoint.
 *
 * The newest segment may end in a run of NUL bytes: the writer zero-fills ahead of its last
 * record so that an fdatasync flushes data only (group-commit.ts, "preallocation"). Its records
 * end where its content does, found by framing, never by the file's size: the last newline
 * before the first NUL byte. No record holds a NUL byte (JSON.stringify escapes it).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { leafHash, MerkleFrontier } from './merkle';
import { GENESIS_HASH } from './record';

const SEGMENT = /^audit-(\d{8})\.jsonl$/;

/** An error from the audit writer, with the path it concerns. */
export class AuditWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditWriteError';
  }
}

/** Name of segment number n. */
export function segmentName(n: number): string {
  return `audit-${String(n).padStart(8, '0')}.jsonl`;
}

/** True for a segment file name. The readers (query, sinks) use this; verify keeps its own. */
export function isSegmentName(file: string): boolean {
  return SEGMENT.test(file);
}

/** Segment number of a file name, or null. */
export function segmentNumber(file: string): number | null {
  const m = SEGMENT.exec(file);
  return m ? Number(m[1]) : null;
}

/** Lists segment files of a directory in order. */
export function listSegments(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => SEGMENT.test(f))
    .sort();
}

/** What a finished segment's successor commits to. */
export interface SegmentSummary {
  readonly file: string;
  readonly last_seq: number;
  readonly last_hash: string;
  readonly sha256: string;
}

/** The chain state the writer resumes from. */
export interface ScannedTrail {
  readonly seq: number;
  readonly hash: string;
  readonly frontier: MerkleFrontier;
  /** The newest segment: number, bytes of complete lines, running digest, records in it. */
  readonly segment: number;
  readonly segmentBytes: number;
  readonly segmentHash: Hash;
  /** ISO time of the newest segment's first record, if any. */
  readonly segmentStartedAt: string | null;
  readonly previous: SegmentSummary | null;
  readonly lastCheckpointSeq: number;
  readonly lastKeyId: string | null;
  /** Bytes after the newest segment's last newline (a torn write), or null. */
  readonly tornBytes: Buffer | null;
}

function sha256hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Returns the state to continue the trail in `dir` from. Reads only the newest segment (and the
 * last line of the one before) when a checkpoint there carries the Merkle frontier; otherwise,
 * e.g. for a trail written before checkpoints existed, reads every segment.
 */
export function scanTrail(dir: string): ScannedTrail {
  const files = listSegments(dir);
  return (files.length > 0 && resumeFromCheckpoint(dir, files)) || fullScan(dir, files);
}

function splitLines(data: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  for (let start = 0; start < data.length; ) {
    const end = data.indexOf(0x0a, start);
    lines.push(data.subarray(start, end));
    start = end + 1;
  }
  return lines;
}

function parse(line: Buffer): Record<string, unknown> | null {
  try {
    const rec = JSON.parse(line.toString('utf8'));
    return rec && typeof rec === 'object' && typeof rec.seq === 'number' ? rec : null;
  } catch {
    return null;
  }
}

/**
 * A newest segment's complete lines and its torn bytes: those after the last newline that comes
 * before the first NUL byte, up to the last byte that is not NUL. After a crash of a writer that
 * preallocates, the torn bytes may hold NULs too (pages of an unsynced batch that never reached
 * the disk); none of it was acknowledged, since everything acknowledged was synced in order.
 */
export function splitNewest(data: Buffer): { data: Buffer; torn: Buffer | null } {
  const nul = data.indexOf(0);
  const contentEnd = nul === -1 ? data.length : nul;
  const nl = data.lastIndexOf(0x0a, contentEnd - 1);
  const complete = contentEnd === 0 ? 0 : nl + 1;
  let last = data.length;
  while (last > complete && data[last - 1] === 0) last--;
  return { data: data.subarray(0, complete), torn: last > complete ? data.subarray(complete, last) : null };
}

function readNewest(dir: string, name: string): { data: Buffer; torn: Buffer | null } {
  return splitNewest(readFileSync(path.join(dir, name)));
}

/** The last line of a finished segment (read from its end only). */
function lastLineOf(file: string): Buffer | null {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 1 << 20);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    if (len === 0 || buf[len - 1] !== 0x0a) return null;
    const start = buf.lastIndexOf(0x0a, len - 2) + 1;
    if (start === 0 && len < size) return null;
    return buf.subarray(start, len - 1);
  } finally {
    closeSync(fd);
  }
}

function checkpointFrontier(rec: Record<string, unknown> | null): MerkleFrontier | null {
  if (rec?.type !== 'checkpoint' || !Array.isArray(rec.frontier) || typeof rec.size !== 'number' || rec.size !== (rec.seq as number) - 1) return null;
  try {
    const frontier = MerkleFrontier.resume(
      rec.frontier.map((h: unknown) => Buffer.from(String(h), 'base64')),
      rec.size,
    );
    // Resume only from a frontier that reproduces the root the checkpoint signed.
    return frontier.root().toString('base64') === rec.root ? frontier : null;
  } catch {
    return null;
  }
}

function resumeFromCheckpoint(dir: string, files: string[]): ScannedTrail | null {
  const newest = files[files.length - 1];
  const { data, torn } = readNewest(dir, newest);
  const lines = splitLines(data);
  // The last checkpoint: in the newest segment, else the rotation checkpoint ending the one before.
  let from = -1;
  let anchor: Record<string, unknown> | null = null;
  let frontier: MerkleFrontier | null = null;
  for (let i = lines.length - 1; i >= 0 && !frontier; i--) {
    if (!lines[i].includes('"type":"checkpoint"')) continue;
    anchor = parse(lines[i]);
    frontier = checkpointFrontier(anchor);
    if (frontier) {
      frontier.push(leafHash(lines[i]));
      from = i + 1;
    } else return null;
  }
  let previousLine: Buffer | null = null;
  if (!frontier) {
    if (files.length < 2) return null;
    previousLine = lastLineOf(path.join(dir, files[files.length - 2]));
    if (!previousLine) return null;
    anchor = parse(previousLine);
    frontier = checkpointFrontier(anchor);
    if (!frontier) return null;
    frontier.push(leafHash(previousLine));
    from = 0;
  }
  for (let i = from; i < lines.length; i++) frontier.push(leafHash(lines[i]));
  const last = lines.length ? lines[lines.length - 1] : (previousLine ?? lastLineOf(path.join(dir, files[files.length - 2])));
  const lastRec = last ? parse(last) : null;
  if (!last || !lastRec) return null;
  const first = lines.length ? parse(lines[0]) : null;
  let previous: SegmentSummary | null = null;
  if (lines.length === 0) {
    // The newest segment is empty: its segment_start still has to be written, naming the one before.
    const prevName = files[files.length - 2];
    previous = { file: prevName, last_seq: lastRec.seq as number, last_hash: sha256hex(last), sha256: sha256hex(readFileSync(path.join(dir, prevName))) };
  }
  const segmentHash = createHash('sha256').update(data);
  return {
    seq: lastRec.seq as number,
    hash: sha256hex(last),
    frontier,
    segment: segmentNumber(newest) as number,
    segmentBytes: data.length,
    segmentHash,
    segmentStartedAt: typeof first?.time === 'string' ? first.time : null,
    previous,
    lastCheckpointSeq: (anchor as Record<string, unknown>).seq as number,
    lastKeyId: typeof anchor?.key_id === 'string' ? anchor.key_id : null,
    tornBytes: torn,
  };
}

/** Reads every segment: for trails without a resumable checkpoint (and to check the fast path). */
export function fullScan(dir: string, files: string[] = listSegments(dir)): ScannedTrail {
  const frontier = new MerkleFrontier();
  let seq = 0;
  let hash = GENESIS_HASH;
  let previous: SegmentSummary | null = null;
  let lastCheckpointSeq = 0;
  let lastKeyId: string | null = null;
  let segment = 1;
  let segmentBytes = 0;
  let segmentHash = createHash('sha256');
  let segmentStartedAt: string | null = null;
  let tornBytes: Buffer | null = null;
  files.forEach((name, index) => {
    const newest = index === files.length - 1;
    let data: Buffer = readFileSync(path.join(dir, name));
    if (data.length > 0 && data[data.length - 1] !== 0x0a) {
      if (!newest) throw new AuditWriteError(`${name} is not the newest segment but its last line is incomplete; run 'portcullis audit verify'`);
      ({ data, torn: tornBytes } = splitNewest(data));
    }
    let records = 0;
    let start = 0;
    let firstTime: string | null = null;
    while (start < data.length) {
      const end = data.indexOf(0x0a, start);
      const line = data.subarray(start, end);
      frontier.push(leafHash(line));
      hash = sha256hex(line);
      const isCheckpoint = line.includes('"type":"checkpoint"');
      if (records === 0 || end === data.length - 1 || isCheckpoint) {
        let rec: { seq?: unknown; type?: unknown; key_id?: unknown; time?: unknown };
        try {
          rec = JSON.parse(line.toString('utf8'));
        } catch {
          throw new AuditWriteError(`${name}: a record is not valid JSON; run 'portcullis audit verify' and repair the trail by hand`);
        }
        if (typeof rec.seq !== 'number') throw new AuditWriteError(`${name}: a record has no seq; run 'portcullis audit verify'`);
        seq = rec.seq;
        if (records === 0 && typeof rec.time === 'string') firstTime = rec.time;
        if (rec.type === 'checkpoint') {
          lastCheckpointSeq = rec.seq;
          lastKeyId = typeof rec.key_id === 'string' ? rec.key_id : null;
        }
      }
      records++;
      start = end + 1;
    }
    if (newest) {
      segment = segmentNumber(name) as number;
      segmentBytes = data.length;
      segmentHash.update(data);
      segmentStartedAt = firstTime;
    } else {
      previous = { file: name, last_seq: seq, last_hash: hash, sha256: sha256hex(data) };
    }
  });
  if (files.length === 0) segmentHash = createHash('sha256');
  return { seq, hash, frontier, segment, segmentBytes, segmentHash, segmentStartedAt, previous, lastCheckpointSeq, lastKeyId, tornBytes };
}

/** A segment file's length without its trailing NUL bytes (the preallocated zero tail), read from its end. */
export function contentLength(fd: number): number {
  let end = fstatSync(fd).size;
  const probe = Buffer.allocUnsafe(64 * 1024);
  while (end > 0) {
    const len = Math.min(probe.length, end);
    const n = readSync(fd, probe, 0, len, end - len);
    let i = n;
    while (i > 0 && probe[i - 1] === 0) i--;
    if (i > 0) return end - len + i;
    end -= len;
  }
  return 0;
}

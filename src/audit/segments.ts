/**
 * Segment files of a trail and the writer's start-up scan. A trail is a directory of
 * `audit-NNNNNNNN.jsonl` files; only the newest is appended to. At start-up the writer reads
 * every segment once to rebuild its chain state: the last record's seq and hash, the Merkle
 * frontier over all records, the newest segment's digest so far, the previous segment's summary
 * (for the next `segment_start`), and the key of the last checkpoint.
 */
import { createHash, type Hash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
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
  readonly segmentRecords: number;
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

/** Reads every segment of `dir` and returns the state to continue the trail from. */
export function scanTrail(dir: string): ScannedTrail {
  const files = listSegments(dir);
  const frontier = new MerkleFrontier();
  let seq = 0;
  let hash = GENESIS_HASH;
  let previous: SegmentSummary | null = null;
  let lastCheckpointSeq = 0;
  let lastKeyId: string | null = null;
  let segment = 1;
  let segmentBytes = 0;
  let segmentHash = createHash('sha256');
  let segmentRecords = 0;
  let segmentStartedAt: string | null = null;
  let tornBytes: Buffer | null = null;
  files.forEach((name, index) => {
    const newest = index === files.length - 1;
    let data = readFileSync(path.join(dir, name));
    if (data.length > 0 && data[data.length - 1] !== 0x0a) {
      if (!newest) throw new AuditWriteError(`${name} is not the newest segment but its last line is incomplete; run 'portcullis audit verify'`);
      const nl = data.lastIndexOf(0x0a);
      tornBytes = data.subarray(nl + 1);
      data = data.subarray(0, nl + 1);
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
      segmentRecords = records;
      segmentStartedAt = firstTime;
    } else {
      previous = { file: name, last_seq: seq, last_hash: hash, sha256: sha256hex(data) };
    }
  });
  if (files.length === 0) segmentHash = createHash('sha256');
  return { seq, hash, frontier, segment, segmentBytes, segmentHash, segmentRecords, segmentStartedAt, previous, lastCheckpointSeq, lastKeyId, tornBytes };
}

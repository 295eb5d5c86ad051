/**
 * Everything that advances with each record, as one value so that a failed write can rewind it:
 * seq, the hash of the last line, the Merkle frontier, and the open segment's size and hash.
 */
import { createHash, type Hash, hash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { leafHashOfFramed, type MerkleFrontier } from '../merkle';
import { serializeRecord, type AuditEvent, type ChainedRecord } from '../record';
import { segmentName, type SegmentSummary } from '../segments';

export interface ChainState {
  seq: number;
  hash: string;
  frontier: MerkleFrontier;
  segment: number;
  segmentBytes: number;
  segmentHash: Hash;
  /** performance.now() at which the segment counts as opened (for rotation by age). */
  segmentOpenedAt: number;
  previous: SegmentSummary | null;
  lastCheckpointSeq: number;
}

export function cloneState(s: ChainState): ChainState {
  return { ...s, frontier: s.frontier.clone(), segmentHash: s.segmentHash.copy() };
}

/**
 * Fixes the record's seq and prev, advances the chain past it, and returns the line's bytes as
 * written: UTF-8, newline-terminated. The line is encoded once, into a buffer that starts with
 * the Merkle leaf prefix (0x00), and the three hashes and the batch's write read views of it:
 * hashing and writing the string copied the 1–2 KB line onto the heap once per hash and again
 * to write it. Record building and writing allocated 13 KB per MCP call before, 6 KB after (of
 * 62 and 55 KB per call; docs/benchmarks.md, "Allocation and the young generation").
 */
export function chainRecord(s: ChainState, event: AuditEvent): Buffer {
  const seq = s.seq + 1;
  const line = serializeRecord({ seq, prev: s.hash, ...event } as ChainedRecord);
  const n = Buffer.byteLength(line);
  const framed = Buffer.allocUnsafe(n + 2);
  framed[0] = 0;
  framed.write(line, 1, 'utf8');
  framed[n + 1] = 0x0a;
  const written = framed.subarray(1);
  s.seq = seq;
  s.hash = hash('sha256', written.subarray(0, n), 'hex');
  s.frontier.push(leafHashOfFramed(framed.subarray(0, n + 1)));
  s.segmentHash.update(written);
  s.segmentBytes += n + 1;
  return written;
}

/** Ends the open segment in the state: the next record goes to a new, empty segment. */
export function moveToNextSegment(s: ChainState): void {
  s.previous = { file: segmentName(s.segment), last_seq: s.seq, last_hash: s.hash, sha256: s.segmentHash.copy().digest('hex') };
  s.segment++;
  s.segmentBytes = 0;
  s.segmentHash = createHash('sha256');
  s.segmentOpenedAt = performance.now();
}

/**
 * Everything that advances with each record, as one value so that a failed write can rewind it:
 * seq, the hash of the last line, the Merkle frontier, and the open segment's size and hash.
 */
import { createHash, type Hash, hash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { leafHash, type MerkleFrontier } from '../merkle';
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

/** Fixes the record's seq and prev, advances the chain past it, and returns its line. */
export function chainRecord(s: ChainState, event: AuditEvent): string {
  const seq = s.seq + 1;
  const line = serializeRecord({ seq, prev: s.hash, ...event } as ChainedRecord);
  s.seq = seq;
  s.hash = hash('sha256', line, 'hex');
  s.frontier.push(leafHash(line));
  s.segmentHash.update(`${line}\n`);
  s.segmentBytes += Buffer.byteLength(line) + 1;
  return line;
}

/** Ends the open segment in the state: the next record goes to a new, empty segment. */
export function moveToNextSegment(s: ChainState): void {
  s.previous = { file: segmentName(s.segment), last_seq: s.seq, last_hash: s.hash, sha256: s.segmentHash.copy().digest('hex') };
  s.segment++;
  s.segmentBytes = 0;
  s.segmentHash = createHash('sha256');
  s.segmentOpenedAt = performance.now();
}

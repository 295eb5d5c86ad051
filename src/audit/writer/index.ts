/**
 * The audit writer: append-only JSON Lines segments with a hash chain, a Merkle tree and signed
 * checkpoints, written with group commit. One file per part:
 *
 * - audit-log.ts: the `AuditLog` interface the request path holds, and the writer's options.
 * - open.ts: opening and recovering the trail (lock, scan, torn tail, verifier key).
 * - group-commit.ts: the writer itself: batching, the write and fdatasync, rewinding on failure,
 *   leaving a segment whose sync failed, health.
 * - chain-state.ts: seq, hashes, Merkle frontier and segment as one rewindable value.
 * - checkpoints.ts: the checkpoint record and the `checkpoint` file.
 *
 * - Records appended in the same turn of the event loop share one write and one fdatasync;
 *   `append` resolves only when its record is on disk (strict) or handed to the OS (relaxed).
 * - A failed write rejects the batch and everything queued behind it and rewinds the chain to
 *   the last durable record; writes go to explicit offsets, so the file never holds a gap or a
 *   half batch. A failed fdatasync is not retried on the same descriptor: the chain moves on to
 *   a new segment.
 * - A checkpoint (a C2SP signed note over the RFC 6962 root of every record before it) is
 *   appended every `checkpoint.everyRecords` records, every `checkpoint.everySeconds` even when
 *   idle, before each rotation and at close.
 * - The open segment is zero-filled ahead of its last record (preallocation), so an fdatasync
 *   flushes data without committing a new file size; only the newest segment has a zero tail,
 *   and readers find its end by content.
 * - Segments rotate by size and age: the old one ends with a checkpoint, the new one begins with
 *   a `segment_start` record naming the old file, its last seq and hash and its SHA-256.
 * - One writer per directory, held by a kernel lock (../writer-lock.ts); a writer that finds the
 *   lock left by one that died records `writer_takeover` naming it.
 */
export {
  DEFAULT_CHECKPOINT,
  DEFAULT_PREALLOCATE_BYTES,
  DEFAULT_ROTATE,
  LAZY_FLUSH_MS,
  type AppendOptions,
  type AuditLog,
  type AuditWriterOptions,
  type CheckpointCadence,
  type HealthDetail,
  type RotationThresholds,
} from './audit-log';
export { CHECKPOINT_FILE } from './checkpoints';
export { JsonlAuditWriter } from './group-commit';
export { openAuditWriter, PUBLIC_KEY_FILE } from './open';
export { AuditWriteError, listSegments, segmentName } from '../segments';
export { LOCK_FILE } from '../writer-lock';

/**
 * The JSON Lines writer: group commit. Records appended in the same turn of the event loop share
 * one write and one fdatasync; a failed write rejects the batch and everything behind it and
 * rewinds the chain state to the last durable record; a failed fdatasync moves the chain to a
 * new segment. Checkpoints and rotation are triggered from here (maintain). Open it with
 * openAuditWriter (open.ts).
 *
 * Preallocation: the open segment is kept zero-filled ahead of its last record
 * (`preallocateBytes`, synced), so that a batch overwrites zeros inside a file whose size is
 * already durable and its fdatasync flushes data only: appending, every sync also commits the
 * new size (on ext4 a journal commit, shared with every other writer of the filesystem; measured
 * in docs/benchmarks.md, "fdatasync on this disk"). PostgreSQL's WAL does the same with
 * wal_init_zero. Readers find the end of the records by content, not by size (../segments.ts).
 * A finished segment (rotation, close) is cut back to its last record, so only the newest
 * segment ever has a zero tail.
 */
import fs, { closeSync, constants as fsc, fsyncSync, openSync, statfsSync, writeSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { AuditEvent } from '../record';
import { AuditWriteError, segmentName } from '../segments';
import { abandonLock, releaseLock, type HeldLock } from '../writer-lock';
import {
  DEFAULT_CHECKPOINT,
  DEFAULT_PREALLOCATE_BYTES,
  DEFAULT_ROTATE,
  LAZY_FLUSH_MS,
  type AppendOptions,
  type AuditLog,
  type AuditWriterOptions,
  type CheckpointCadence,
  type RotationThresholds,
} from './audit-log';
import { chainRecord, cloneState, moveToNextSegment, type ChainState } from './chain-state';
import { checkpointEvent, writeCheckpointFile } from './checkpoints';

const fdatasync = promisify(fs.fdatasync);
const fsync = promisify(fs.fsync);
const ftruncate = promisify(fs.ftruncate);
const write = promisify(fs.write);
const open = promisify(fs.open);
const close = promisify(fs.close);

const TMPFS_MAGIC = 0x01021994;
const PAGE = 4096;
/** The zeros a segment is extended with, one thread-pool write per MiB. */
let zeros: Buffer | null = null;

/** Makes a new directory entry durable. */
async function syncDirectory(dir: string): Promise<void> {
  const fd = await open(dir, fsc.O_RDONLY);
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

interface Pending {
  /** The record's line as written: UTF-8, newline-terminated (chainRecord). */
  readonly bytes: Buffer;
  readonly seq: number;
  readonly segment: number;
  /** The chain state right after this record, kept for the last record of a segment. */
  readonly after: ChainState | null;
  /** The signed note, for checkpoint records. */
  readonly note: string | null;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** JSON Lines writer with hash chain, checkpoints and group commit. Create with openAuditWriter (open.ts). */
export class JsonlAuditWriter implements AuditLog {
  private queue: Pending[] = [];
  private flushing = false;
  private scheduled = false;
  private lazyTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Set by a failed fdatasync until the chain has left that segment (leaveFailedSegment). */
  private failedSegment = false;
  /** Set when opening failed: close then leaves the lock file as it found it (abandonLock). */
  startFailed = false;
  /** Chain state after the last record appended (not necessarily durable). */
  private state: ChainState;
  /** Chain state after the last durable record. */
  private durable: ChainState;
  /** The open segment file, its number, and the bytes durably written to it. */
  private fd: number | null = null;
  private fdSegment = 0;
  /** End of the records written to the open segment. */
  private fdEnd = 0;
  /** The open segment's size: its records, then (when preallocating) zeros up to here, synced. */
  private fdSize = 0;
  /** Bytes of zeros kept ahead of the open segment's last record; 0: none (relaxed, tmpfs). */
  private readonly preallocateBytes: number;
  /** performance.now() before which a failed preallocation is not tried again. */
  private preallocateRetryAt = 0;
  private _healthy = true;
  private outageSince = '';
  private refusedRecords = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly checkpointEvery: CheckpointCadence;
  private readonly rotate: RotationThresholds;
  private lastCheckpointAt = performance.now();
  private noteToPublish: string | null = null;
  private publishing: Promise<void> | null = null;
  private synced = 0;
  private syncing = false;
  /** Segments whose directory entry this process has synced. */
  private readonly dirSynced = new Set<number>();
  readonly clock: () => Date;

  constructor(
    private readonly options: AuditWriterOptions,
    private readonly lock: HeldLock,
    state: ChainState,
  ) {
    this.state = state;
    this.durable = cloneState(state);
    this.clock = options.now ?? (() => new Date());
    this.checkpointEvery = options.checkpoint ?? DEFAULT_CHECKPOINT;
    this.rotate = options.rotate ?? DEFAULT_ROTATE;
    // On tmpfs an fdatasync costs nothing and zeros cost memory; relaxed mode syncs once a second.
    const tmpfs = statfsSync(options.dir).type === TMPFS_MAGIC;
    this.preallocateBytes = tmpfs || options.durability === 'relaxed' ? 0 : (options.preallocateBytes ?? DEFAULT_PREALLOCATE_BYTES);
    if (options.durability === 'relaxed') {
      const sync = setInterval(() => void this.syncRelaxed(), 1000);
      this.timers.push(sync);
    }
    // The heartbeat: a checkpoint whenever none was written for a whole interval, idle or not.
    const periodMs = this.checkpointEvery.everySeconds * 1000;
    const heartbeat = setInterval(
      () => {
        if (this.closed || !this._healthy) return;
        if (performance.now() - this.lastCheckpointAt >= periodMs - 5) this.appendCheckpoint();
        this.maintain(); // rotation by age happens on an idle trail too
        this.schedule();
      },
      Math.max(10, Math.min(periodMs, 1000)),
    );
    this.timers.push(heartbeat);
    for (const t of this.timers) t.unref();
  }

  get healthy(): boolean {
    return this._healthy;
  }

  /** The seq of the last record written (strict: and synced). */
  get lastSeq(): number {
    return this.durable.seq;
  }

  /**
   * The seq of the last record known to be on stable storage: what may leave the machine (sinks,
   * the checkpoint file). Equals lastSeq in strict mode; trails it by up to a second in relaxed.
   */
  get syncedSeq(): number {
    return this.options.durability === 'strict' ? this.durable.seq : this.synced;
  }

  /** Relaxed mode's periodic sync: records written before it are then on stable storage. */
  private async syncRelaxed(): Promise<void> {
    if (this.fd === null || this.flushing || this.syncing) return;
    const target = this.durable.seq;
    this.syncing = true;
    try {
      await fdatasync(this.fd);
      this.synced = Math.max(this.synced, target);
    } catch {
      // The next write's failure or success decides health; nothing is acknowledged as synced.
    } finally {
      this.syncing = false;
    }
  }

  append(event: AuditEvent, options?: AppendOptions): Promise<void> {
    if (this.closed) return Promise.reject(new AuditWriteError('the audit writer is closed'));
    if (this.failedSegment && !this.leaveFailedSegment()) {
      this.refusedRecords++;
      return Promise.reject(new AuditWriteError('audit write failed: the segment whose sync failed cannot be cut back to its last durable record yet'));
    }
    const done = this.enqueue(event, null);
    this.maintain();
    if (options?.lazy && !this.flushing && !this.scheduled) {
      if (!this.lazyTimer) {
        this.lazyTimer = setTimeout(() => {
          this.lazyTimer = null;
          this.schedule();
        }, LAZY_FLUSH_MS);
      }
    } else this.schedule();
    return done;
  }

  /** Resolves once everything appended so far has been written (or has failed). */
  settle(): Promise<void> {
    if (!this.flushing && !this.scheduled && this.queue.length === 0) return Promise.resolve();
    this.schedule();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * After a failed fdatasync, the chain moves to a new segment so that no byte of the failed page
   * is written again: the failed segment is cut back to its last durable record through a fresh
   * descriptor, and the next record opens segment N+1 with a segment_start naming it. Runs when
   * nothing is queued (the failure rejected everything); returns false, to be retried at the next
   * append, while the cut cannot be made. A segment with no durable record is only cut: it holds
   * nothing to protect.
   */
  private leaveFailedSegment(): boolean {
    if (this.flushing || this.queue.length > 0) return false; // not while records are on their way
    const s = this.state;
    try {
      const fd = openSync(path.join(this.options.dir, segmentName(s.segment)), fsc.O_WRONLY);
      try {
        fs.ftruncateSync(fd, s.segmentBytes);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      return false;
    }
    if (s.segmentBytes > 0) {
      moveToNextSegment(s);
      this.durable = cloneState(s);
    }
    this.failedSegment = false;
    return true;
  }

  /** Appends the record that opens a new segment: at rotation, and before the first record of an empty one. */
  private startSegmentRecord(): void {
    const previous = this.state.previous;
    void this.enqueue({ type: 'segment_start', time: this.clock().toISOString(), segment: segmentName(this.state.segment), previous }, null).catch(
      () => undefined,
    );
  }

  /** Checkpoints and rotates when a threshold has been reached. */
  private maintain(): void {
    if (this.state.seq - this.state.lastCheckpointSeq >= this.checkpointEvery.everyRecords) this.appendCheckpoint();
    if (this.rotationDue()) this.rotateSegment();
  }

  private rotationDue(): boolean {
    const s = this.state;
    return s.segmentBytes >= this.rotate.maxBytes || performance.now() - s.segmentOpenedAt >= this.rotate.maxAgeSeconds * 1000;
  }

  /** Ends the current segment with a checkpoint and opens the next with segment_start. */
  private rotateSegment(): void {
    const s = this.state;
    if (s.lastCheckpointSeq !== s.seq) this.appendCheckpoint();
    // The segment's last pending record carries the state to rewind to if the next one fails.
    const last = this.queue[this.queue.length - 1];
    if (last && last.segment === s.segment) (last as { after: ChainState | null }).after = cloneState(s);
    moveToNextSegment(s);
    this.startSegmentRecord();
  }

  /** Appends a signed checkpoint over every record appended so far. */
  private appendCheckpoint(): void {
    const s = this.state;
    const { event, note } = checkpointEvent(this.options.signer, s, this.clock().toISOString());
    void this.enqueue(event, note).catch(() => undefined);
    s.lastCheckpointSeq = s.seq;
    this.lastCheckpointAt = performance.now();
  }

  /** Assigns the chain fields and queues the line. */
  private enqueue(event: AuditEvent, note: string | null): Promise<void> {
    const s = this.state;
    // A segment after the first always opens with segment_start, also when a failed write
    // rewound the chain to before it.
    if (s.segment > 1 && s.segmentBytes === 0 && event.type !== 'segment_start') this.startSegmentRecord();
    const bytes = chainRecord(s, event);
    const { seq, segment } = s;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes, seq, segment, after: null, note, resolve, reject });
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled || this.queue.length === 0) return;
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /**
   * Makes `segment` the open file, positioned after its durable bytes: anything after them (a
   * torn line kept aside by open.ts, the zero tail a crashed writer left, a failed batch) is cut
   * off. Off the event loop: the previous segment's sync and the directory sync wait on the
   * device, and at rotation every call waits for them anyway.
   */
  private async openSegment(segment: number, durableBytes: number): Promise<void> {
    if (this.fdSegment === segment && this.fd !== null) return;
    if (this.fd !== null) await this.finishSegment();
    const file = path.join(this.options.dir, segmentName(segment));
    const fd = await open(file, fsc.O_WRONLY | fsc.O_CREAT, 0o640);
    try {
      await ftruncate(fd, durableBytes);
      if (!this.dirSynced.has(segment)) {
        // A new directory entry is durable only once the directory itself is synced.
        await syncDirectory(this.options.dir);
        this.dirSynced.add(segment);
      }
    } catch (err) {
      await close(fd).catch(() => undefined);
      throw err;
    }
    this.fd = fd;
    this.fdSegment = segment;
    this.fdEnd = this.fdSize = durableBytes;
    this.preallocateRetryAt = 0;
  }

  /**
   * Closes the open segment for good: cuts its zero tail off, so that a finished segment is plain
   * JSON Lines (jq, grep and the next segment's digest see its records only), and syncs that.
   */
  private async finishSegment(): Promise<void> {
    const fd = this.fd as number;
    this.fd = null;
    try {
      if (this.fdSize > this.fdEnd) await ftruncate(fd, this.fdEnd);
      await fsync(fd);
    } finally {
      await close(fd).catch(() => undefined);
    }
  }

  /**
   * Keeps `preallocateBytes` of synced zeros ahead of the open segment's last record, so that
   * the next batches overwrite them in place (see the module comment). Runs between batches,
   * about once per `preallocateBytes / 2` of records; a batch that arrives meanwhile waits for it
   * (about 2 ms per MiB on the disk measured). A failure (a full disk) leaves the file as it
   * was: batches then append, and fail by themselves if they cannot.
   */
  private async preallocate(): Promise<void> {
    const fd = this.fd;
    if (this.preallocateBytes === 0 || fd === null || this.fdSize - this.fdEnd >= this.preallocateBytes / 2) return;
    if (performance.now() < this.preallocateRetryAt) return;
    const from = this.fdSize;
    const to = Math.ceil((this.fdEnd + this.preallocateBytes) / PAGE) * PAGE;
    zeros ??= Buffer.alloc(1 << 20);
    try {
      for (let at = from; at < to; ) at += (await write(fd, zeros, 0, Math.min(zeros.length, to - at), at)).bytesWritten;
      await fdatasync(fd);
      this.fdSize = to;
    } catch {
      this.preallocateRetryAt = performance.now() + 1000;
      await ftruncate(fd, from).catch(() => undefined);
    }
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    if (this.flushing) return; // the flush under way takes the queue when it ends
    if (this.queue.length === 0) return this.wakeIdle();
    this.flushing = true;
    const batch = this.queue;
    this.queue = [];
    const endState = cloneState(this.state);
    let i = 0;
    let syncFailed = false;
    try {
      // A batch may span a rotation: write it one segment at a time.
      while (i < batch.length) {
        const segment = batch[i].segment;
        let j = i;
        const parts: Buffer[] = [];
        while (j < batch.length && batch[j].segment === segment) parts.push(batch[j++].bytes);
        const offset = segment === this.durable.segment ? this.durable.segmentBytes : 0;
        await this.openSegment(segment, offset);
        const buf = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        // The write goes to the page cache synchronously: a thread-pool round trip per batch cost
        // more CPU than the copy (measured). The fdatasync, which waits on the device, does not.
        let done = 0;
        let syncing = false;
        try {
          while (done < buf.length) done += writeSync(this.fd as number, buf, done, buf.length - done, offset + done);
          this.fdEnd = offset + buf.length;
          this.fdSize = Math.max(this.fdSize, this.fdEnd);
          syncing = this.options.durability === 'strict';
          if (syncing) await fdatasync(this.fd as number);
        } catch (err) {
          if (syncing) {
            // An fdatasync error is not retriable: the kernel may have marked the failed pages
            // clean without writing them, and a second sync on this descriptor would report
            // success. Drop the descriptor and leave the segment (leaveFailedSegment).
            syncFailed = true;
            try {
              closeSync(this.fd as number);
            } catch {
              /* EIO again on close: the descriptor is gone all the same */
            }
            this.fd = null;
            throw err;
          }
          // Cut the failed bytes off durably, or reopen (and truncate) before the next write.
          try {
            await ftruncate(this.fd as number, offset);
            await fdatasync(this.fd as number);
            this.fdEnd = this.fdSize = offset;
          } catch {
            closeSync(this.fd as number);
            this.fd = null;
          }
          throw err;
        }
        const last = batch[j - 1];
        this.durable = j === batch.length ? endState : (last.after as ChainState);
        for (let k = i; k < j; k++) {
          if (batch[k].note) this.noteToPublish = batch[k].note;
          batch[k].resolve();
        }
        i = j;
      }
    } catch (thrown) {
      const err = new AuditWriteError(`audit write failed: ${(thrown as Error).message}`);
      // Everything queued behind the failure chains from it: reject it all and rewind.
      const dropped = batch.slice(i).concat(this.queue);
      this.queue = [];
      this.state = cloneState(this.durable);
      if (syncFailed) this.failedSegment = true; // left at the next append
      if (this._healthy) {
        this._healthy = false;
        this.outageSince = this.clock().toISOString();
        this.refusedRecords = dropped.length;
        this.options.onHealthChange?.(false, { error: err, since: this.outageSince, refusedRecords: dropped.length });
      } else this.refusedRecords += dropped.length;
      for (const p of dropped) p.reject(err);
    } finally {
      this.flushing = false;
    }
    if (i === batch.length) {
      // Still flushing: a record the callbacks append waits in the queue, so that no batch is
      // written while the zeros are (they would overwrite it).
      this.flushing = true;
      try {
        this.afterDurable();
        // After the callers and the health callback heard of the batch: its records wait for nothing.
        await this.preallocate();
      } finally {
        this.flushing = false;
      }
    }
    if (this.queue.length > 0) void this.flush();
    else this.wakeIdle();
  }

  /** Outside the write's error handling, so a throwing callback cannot rewind a good write. */
  private afterDurable(): void {
    if (this.options.durability === 'strict') this.synced = this.durable.seq;
    if (!this._healthy) {
      this._healthy = true;
      this.options.onHealthChange?.(true, { since: this.outageSince, refusedRecords: this.refusedRecords });
    }
    if (this.noteToPublish && !this.publishing) this.publishing = this.publishCheckpoint();
    this.options.onDurable?.();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Replaces the checkpoint file with the newest durable note (write, sync, rename, sync dir). */
  private async publishCheckpoint(): Promise<void> {
    try {
      while (this.noteToPublish) {
        const note = this.noteToPublish;
        this.noteToPublish = null;
        // A checkpoint may leave the machine only once the records it covers are on stable storage.
        if (this.options.durability === 'relaxed' && this.fd !== null) await fdatasync(this.fd);
        await writeCheckpointFile(this.options.dir, note);
      }
    } catch {
      // The trail itself holds every checkpoint; this copy is a convenience for shipping.
    } finally {
      this.publishing = null;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this._healthy && this.state.lastCheckpointSeq !== this.state.seq) this.appendCheckpoint();
    this.closed = true;
    await this.settle();
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    for (const t of this.timers) clearInterval(t);
    if (this.publishing) await this.publishing;
    if (this.noteToPublish) await this.publishCheckpoint();
    try {
      if (this.fd !== null && this.fdSize > this.fdEnd) await this.finishSegment();
      else if (this.fd !== null) await fdatasync(this.fd);
    } finally {
      if (this.fd !== null) closeSync(this.fd);
      this.fd = null;
      if (this.startFailed) abandonLock(this.lock);
      else releaseLock(this.lock);
    }
  }
}

/**
 * The audit writer: append-only JSON Lines segments with a hash chain, a Merkle tree and signed
 * checkpoints, written with group commit.
 *
 * - Records appended in the same turn of the event loop share one write and one fdatasync;
 *   `append` resolves only when its record is on disk (strict) or handed to the OS (relaxed).
 * - Each record's `seq`, `prev` (SHA-256 of the previous line) and Merkle leaf are fixed when it
 *   is appended. A failed write rejects the batch and everything queued behind it and rewinds
 *   the whole chain state to the last durable record; writes go to explicit offsets, so the
 *   failed bytes are overwritten and the file never holds a gap or a half batch. A failed
 *   fdatasync is not retried on the same descriptor or page: the chain moves on to a new segment.
 * - A `checkpoint` record (a C2SP signed note over the RFC 6962 root of every record before it)
 *   is appended every `checkpoint.everyRecords` records, every `checkpoint.everySeconds` even
 *   when idle (a heartbeat), before each rotation and at close. The newest note is also kept in
 *   the file `checkpoint`, replaced atomically, for shipping off the machine.
 * - Segments rotate by size and age: the old one ends with a checkpoint, the new one begins with
 *   a `segment_start` record naming the old file, its last seq and hash and its SHA-256.
 * - One writer per directory, held by a kernel lock (writer-lock.ts); a writer that finds the
 *   lock left by one that died records `writer_takeover` naming it.
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fsp, constants as fsc, openSync, closeSync, writeSync, fsyncSync, existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { CONFIG_SCHEMA } from '../config/schema';
import { leafHash, type MerkleFrontier } from './merkle';
import { serializeRecord, type AuditEvent, type ChainedRecord } from './record';
import { AuditWriteError, scanTrail, segmentName, type SegmentSummary } from './segments';
import { checkpointBody, type NoteSigner } from './signed-note';
import { abandonLock, acquireLock, releaseLock, type HeldLock } from './writer-lock';

export { AuditWriteError, listSegments, segmentName } from './segments';
export { LOCK_FILE } from './writer-lock';

const fdatasync = promisify(fs.fdatasync);
const ftruncate = promisify(fs.ftruncate);

/** The file beside the segments holding the newest signed checkpoint. */
export const CHECKPOINT_FILE = 'checkpoint';
/** The file beside the segments listing the verifier keys that signed the trail. */
export const PUBLIC_KEY_FILE = 'audit.pub';

/**
 * Where audit events go: the trail as the request path sees it: append a record, know whether appends
 * succeed. A second implementation is a new file. (The shippers that copy the trail elsewhere
 * are the "sinks": src/audit/sinks/.)
 */
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

/** Options of the JSON Lines writer. */
export interface AuditWriterOptions {
  readonly dir: string;
  readonly durability: 'strict' | 'relaxed';
  /** Signs checkpoints; its verifier key is written to audit.pub. */
  readonly signer: NoteSigner;
  /** Checkpoint cadence. Defaults: every 10,000 records or 30 seconds. */
  readonly checkpoint?: { readonly everyRecords: number; readonly everySeconds: number };
  /** Rotation thresholds. Defaults: 64 MiB or 24 hours. */
  readonly rotate?: { readonly maxBytes: number; readonly maxAgeSeconds: number };
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

/** Options of AuditLog.append. */
export interface AppendOptions {
  readonly lazy?: boolean;
}

/** Longest a lazy record waits for company before it is written on its own. */
export const LAZY_FLUSH_MS = 2;

const AUDIT_KEYS = CONFIG_SCHEMA.properties.audit.properties;
/** Checkpoint cadence when none is given: the config schema's defaults, the one place they are set. */
const DEFAULT_CHECKPOINT = Object.freeze({
  everyRecords: AUDIT_KEYS.checkpoint.properties.every_records.default,
  everySeconds: AUDIT_KEYS.checkpoint.properties.every_seconds.default,
});
/** Rotation when none is given: the config schema's defaults. */
const DEFAULT_ROTATE = Object.freeze({
  maxBytes: AUDIT_KEYS.rotate.properties.max_bytes.default,
  maxAgeSeconds: AUDIT_KEYS.rotate.properties.max_age_seconds.default,
});

/** Everything that advances with each record, as one value so a failed write can rewind it. */
interface ChainState {
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

function cloneState(s: ChainState): ChainState {
  return { ...s, frontier: s.frontier.clone(), segmentHash: s.segmentHash.copy() };
}

interface Pending {
  readonly line: string;
  readonly seq: number;
  readonly segment: number;
  /** The chain state right after this record, kept for the last record of a segment. */
  readonly after: ChainState | null;
  /** The signed note, for checkpoint records. */
  readonly note: string | null;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** Opens (or creates) the trail in `dir` and returns its writer. */
export async function openAuditWriter(options: AuditWriterOptions): Promise<JsonlAuditWriter> {
  await fsp.mkdir(options.dir, { recursive: true, mode: 0o750 });
  const lock = await acquireLock(options.dir, { waitMs: options.lockWaitMs });
  try {
    const scan = scanTrail(options.dir);
    const file = path.join(options.dir, segmentName(scan.segment));
    const aside = `${file}.torn-${Date.now()}`;
    if (scan.tornBytes) {
      // Never delete evidence: keep the torn bytes beside the segment, then cut them off.
      const handle = await fsp.open(aside, 'wx', 0o640);
      try {
        await handle.writeFile(scan.tornBytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      // Not cut off here: the first write opens the segment at its last complete line and cuts
      // there, with the recovered_torn_tail record. A crash before then leaves the bytes in
      // place, to be moved aside and recorded at the next start: no aside copy without a record
      // of its own bytes being removed.
    }
    const ageMs = scan.segmentStartedAt ? Math.max(0, Date.now() - Date.parse(scan.segmentStartedAt)) : 0;
    const state: ChainState = {
      seq: scan.seq,
      hash: scan.hash,
      frontier: scan.frontier,
      segment: scan.segment,
      segmentBytes: scan.segmentBytes,
      segmentHash: scan.segmentHash,
      segmentOpenedAt: performance.now() - (Number.isFinite(ageMs) ? ageMs : 0),
      previous: scan.previous,
      lastCheckpointSeq: scan.lastCheckpointSeq,
    };
    await publishVerifierKey(options.dir, options.signer.verifierKey);
    const writer = new JsonlAuditWriter(options, lock, state);
    const now = writer.clock().toISOString();
    if (lock.stale) {
      // The previous writer died holding the lock: the kernel released it; the trail says so.
      void writer.append({ type: 'writer_takeover', time: now, previous: { ...lock.stale }, epoch: lock.holder.epoch, pid: process.pid, waited_ms: lock.waitedMs }).catch(() => undefined);
    }
    if (scan.tornBytes) void writer.append({ type: 'recovered_torn_tail', time: now, moved_to: path.basename(aside), bytes: scan.tornBytes.length }).catch(() => undefined);
    if (scan.lastKeyId !== options.signer.keyId) {
      void writer.append({ type: 'signing_key', time: now, key_id: options.signer.keyId, public_key: options.signer.verifierKey, previous_key_id: scan.lastKeyId }).catch(() => undefined);
    }
    await writer.settle();
    if (!writer.healthy) {
      writer.startFailed = true;
      await writer.close();
      throw new AuditWriteError(`cannot write to the audit trail in ${options.dir}; refusing to start`);
    }
    return writer;
  } catch (err) {
    abandonLock(lock);
    throw err;
  }
}

/** Adds the verifier key to audit.pub (one key per line) unless it is there already. */
async function publishVerifierKey(dir: string, verifierKey: string): Promise<void> {
  const file = path.join(dir, PUBLIC_KEY_FILE);
  const known = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  if (!known.includes(verifierKey)) await fsp.appendFile(file, `${verifierKey}\n`, { mode: 0o644 });
}

/** JSON Lines writer with hash chain, checkpoints and group commit. Create with openAuditWriter. */
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
  private _healthy = true;
  private outageSince = '';
  private refusedRecords = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly checkpointEvery: { readonly everyRecords: number; readonly everySeconds: number };
  private readonly rotate: { readonly maxBytes: number; readonly maxAgeSeconds: number };
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
    if (options.durability === 'relaxed') {
      const sync = setInterval(() => void this.syncRelaxed(), 1000);
      this.timers.push(sync);
    }
    // The heartbeat: a checkpoint whenever none was written for a whole interval, idle or not.
    const periodMs = this.checkpointEvery.everySeconds * 1000;
    const heartbeat = setInterval(() => {
      if (this.closed || !this._healthy) return;
      if (performance.now() - this.lastCheckpointAt >= periodMs - 5) this.appendCheckpoint();
      this.maintain(); // rotation by age happens on an idle trail too
      this.schedule();
    }, Math.max(10, Math.min(periodMs, 1000)));
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
      s.previous = { file: segmentName(s.segment), last_seq: s.seq, last_hash: s.hash, sha256: s.segmentHash.copy().digest('hex') };
      s.segment++;
      s.segmentBytes = 0;
      s.segmentHash = createHash('sha256');
      s.segmentOpenedAt = performance.now();
      this.durable = cloneState(s);
    }
    this.failedSegment = false;
    return true;
  }

  /** Appends the record that opens a new segment: at rotation, and before the first record of an empty one. */
  private startSegmentRecord(): void {
    const previous = this.state.previous;
    void this.enqueue({ type: 'segment_start', time: this.clock().toISOString(), segment: segmentName(this.state.segment), previous }, null).catch(() => undefined);
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
    const previous: SegmentSummary = { file: segmentName(s.segment), last_seq: s.seq, last_hash: s.hash, sha256: s.segmentHash.copy().digest('hex') };
    // The segment's last pending record carries the state to rewind to if the next one fails.
    const last = this.queue[this.queue.length - 1];
    if (last && last.segment === s.segment) (last as { after: ChainState | null }).after = cloneState(s);
    s.segment++;
    s.segmentBytes = 0;
    s.segmentHash = createHash('sha256');
    s.segmentOpenedAt = performance.now();
    s.previous = previous;
    this.startSegmentRecord();
  }

  /** Appends a signed checkpoint over every record appended so far. */
  private appendCheckpoint(): void {
    const s = this.state;
    const signer = this.options.signer;
    const note = signer.sign(checkpointBody(signer.name, s.seq, s.frontier.root()));
    const root = s.frontier.root().toString('base64');
    const size = s.seq;
    const frontier = s.frontier.hashes().map((h) => h.toString('base64'));
    void this.enqueue({ type: 'checkpoint', time: this.clock().toISOString(), size, root, key_id: signer.keyId, note, frontier }, note).catch(() => undefined);
    s.lastCheckpointSeq = s.seq;
    this.lastCheckpointAt = performance.now();
  }

  /** Assigns the chain fields and queues the line. */
  private enqueue(event: AuditEvent, note: string | null): Promise<void> {
    const s = this.state;
    // A segment after the first always opens with segment_start, also when a failed write
    // rewound the chain to before it.
    if (s.segment > 1 && s.segmentBytes === 0 && event.type !== 'segment_start') this.startSegmentRecord();
    const seq = s.seq + 1;
    const line = serializeRecord({ seq, prev: s.hash, ...event } as ChainedRecord);
    s.seq = seq;
    s.hash = createHash('sha256').update(line).digest('hex');
    s.frontier.push(leafHash(line));
    const bytes = Buffer.byteLength(line) + 1;
    s.segmentHash.update(line).update('\n');
    s.segmentBytes += bytes;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, seq, segment: s.segment, after: null, note, resolve, reject });
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled || this.queue.length === 0) return;
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /** Makes `segment` the open file, positioned after its durable bytes. */
  private openSegment(segment: number, durableBytes: number): void {
    if (this.fdSegment === segment && this.fd !== null) return;
    if (this.fd !== null) {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
    }
    const file = path.join(this.options.dir, segmentName(segment));
    this.fd = openSync(file, fsc.O_WRONLY | fsc.O_CREAT, 0o640);
    this.fdSegment = segment;
    fs.ftruncateSync(this.fd, durableBytes);
    if (!this.dirSynced.has(segment)) {
      // A new directory entry is durable only once the directory itself is synced.
      const dirFd = openSync(this.options.dir, fsc.O_RDONLY);
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
      this.dirSynced.add(segment);
    }
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
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
        let text = '';
        while (j < batch.length && batch[j].segment === segment) text += `${batch[j++].line}\n`;
        const offset = segment === this.durable.segment ? this.durable.segmentBytes : 0;
        this.openSegment(segment, offset);
        const buf = Buffer.from(text, 'utf8');
        // The write goes to the page cache synchronously: a thread-pool round trip per batch cost
        // more CPU than the copy (measured). The fdatasync, which waits on the device, does not.
        let done = 0;
        let syncing = false;
        try {
          while (done < buf.length) done += writeSync(this.fd as number, buf, done, buf.length - done, offset + done);
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
    if (i === batch.length) this.afterDurable();
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
        const target = path.join(this.options.dir, CHECKPOINT_FILE);
        const tmp = `${target}.tmp`;
        const handle = await fsp.open(tmp, 'w', 0o644);
        try {
          await handle.writeFile(note);
          await handle.datasync();
        } finally {
          await handle.close();
        }
        await fsp.rename(tmp, target);
        const dir = await fsp.open(this.options.dir, 'r');
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
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
      if (this.fd !== null) await fdatasync(this.fd);
    } finally {
      if (this.fd !== null) closeSync(this.fd);
      this.fd = null;
      if (this.startFailed) abandonLock(this.lock);
      else releaseLock(this.lock);
    }
  }
}

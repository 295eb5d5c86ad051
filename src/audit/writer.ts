/**
 * The audit writer: an append-only JSON Lines segment with a hash chain, written with group
 * commit. Records appended in the same turn of the event loop share one write and one
 * fdatasync; `append` resolves only when its record is on disk (strict) or handed to the OS
 * (relaxed). A failed write rejects the batch and everything queued behind it, rewinds the chain
 * to the last durable record and overwrites the failed bytes on the next attempt (writes go to
 * explicit offsets), so the file never holds a gap or a half batch. One writer per directory,
 * enforced with a lock file.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, constants as fsc, openSync, closeSync, writeSync, readFileSync, unlinkSync, readdirSync, existsSync } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { GENESIS_HASH, serializeRecord, type AuditEvent, type ChainedRecord } from './record';

const fdatasync = promisify(fs.fdatasync);
const ftruncate = promisify(fs.ftruncate);

/** Where audit events go. A second implementation (syslog, remote) is a new file. */
export interface AuditSink {
  /**
   * Appends an event; resolves when it is durable according to the sink's mode. `lazy` records
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
  /** Called when a write fails or recovers (for logs, metrics and the outage record). */
  readonly onHealthChange?: (healthy: boolean, detail: HealthDetail) => void;
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

/** Options of AuditSink.append. */
export interface AppendOptions {
  readonly lazy?: boolean;
}

/** Longest a lazy record waits for company before it is written on its own. */
export const LAZY_FLUSH_MS = 2;

interface Pending {
  readonly line: string;
  readonly hash: string;
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

const SEGMENT = /^audit-(\d{8})\.jsonl$/;
export const LOCK_FILE = 'audit.lock';

/** Name of segment number n. */
export function segmentName(n: number): string {
  return `audit-${String(n).padStart(8, '0')}.jsonl`;
}

/** Lists segment files of a directory in order. */
export function listSegments(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => SEGMENT.test(f))
    .sort();
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** An error from the audit writer, with the path it concerns. */
export class AuditWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditWriteError';
  }
}

/** Lock files this process holds (several gateways may run in one process, e.g. in tests). */
const heldLocks = new Set<string>();

function acquireLock(dir: string): string {
  const lock = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      heldLocks.add(lock);
      return lock;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(lock, 'utf8').trim());
      let alive = false;
      if (pid === process.pid) {
        // Our own pid: held by this process only if we took it; otherwise it was left by an
        // earlier process with the same pid (a container's pid 1 after a restart).
        alive = heldLocks.has(lock);
      } else if (Number.isInteger(pid) && pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (e) {
          alive = (e as NodeJS.ErrnoException).code === 'EPERM';
        }
      }
      if (alive) {
        throw new AuditWriteError(
          `another process (pid ${pid}) is writing to the audit directory ${dir}; refusing to start a second writer (if no Portcullis is running, remove ${lock})`,
        );
      }
      unlinkSync(lock);
    }
  }
  throw new AuditWriteError(`cannot lock the audit directory ${dir}`);
}

/** The state recovered from the newest segment. */
interface Tail {
  readonly file: string;
  readonly size: number;
  readonly seq: number;
  readonly hash: string;
  readonly tornBytes: Buffer | null;
}

function readTail(dir: string): Tail {
  const segments = listSegments(dir);
  const file = path.join(dir, segments.length ? segments[segments.length - 1] : segmentName(1));
  if (!existsSync(file)) return { file, size: 0, seq: 0, hash: GENESIS_HASH, tornBytes: null };
  const data = readFileSync(file);
  let end = data.length;
  let torn: Buffer | null = null;
  if (end > 0 && data[end - 1] !== 0x0a) {
    const nl = data.lastIndexOf(0x0a);
    torn = data.subarray(nl + 1);
    end = nl + 1;
  }
  if (end === 0) return { file, size: 0, seq: 0, hash: GENESIS_HASH, tornBytes: torn };
  const start = data.lastIndexOf(0x0a, end - 2) + 1;
  const line = data.subarray(start, end - 1).toString('utf8');
  let seq: number;
  try {
    seq = (JSON.parse(line) as ChainedRecord).seq;
  } catch {
    throw new AuditWriteError(`the last complete line of ${file} is not valid JSON; run 'portcullis audit verify' and repair the trail by hand`);
  }
  return { file, size: end, seq, hash: sha256(line), tornBytes: torn };
}

/** Opens (or creates) the trail in `dir` and returns its writer. */
export async function openAuditWriter(options: AuditWriterOptions): Promise<JsonlAuditWriter> {
  await fsp.mkdir(options.dir, { recursive: true, mode: 0o750 });
  const lock = acquireLock(options.dir);
  let fd: number | null = null;
  try {
    const tail = readTail(options.dir);
    fd = openSync(tail.file, fsc.O_WRONLY | fsc.O_CREAT, 0o640);
    const writer = new JsonlAuditWriter(options, fd, lock, tail);
    if (tail.tornBytes) {
      // Never delete evidence: keep the torn bytes beside the segment, then cut them off.
      const aside = `${tail.file}.torn-${Date.now()}`;
      await fsp.writeFile(aside, tail.tornBytes, { flag: 'wx' });
      await fsp.truncate(tail.file, tail.size);
      await writer.append({ type: 'recovered_torn_tail', time: new Date().toISOString(), moved_to: path.basename(aside), bytes: tail.tornBytes.length });
    }
    return writer;
  } catch (err) {
    if (fd !== null) closeSync(fd);
    heldLocks.delete(lock);
    unlinkSync(lock);
    throw err;
  }
}

/** JSON Lines writer with hash chain and group commit. Create with openAuditWriter. */
export class JsonlAuditWriter implements AuditSink {
  private queue: Pending[] = [];
  private flushing = false;
  private scheduled = false;
  private lazyTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private offset: number;
  /** Chain state of the last record assigned (may not be durable yet). */
  private seq: number;
  private hash: string;
  /** Chain state of the last durable record. */
  private durableSeq: number;
  private durableHash: string;
  private _healthy = true;
  private outageSince = '';
  private refusedRecords = 0;
  private idle: (() => void) | null = null;
  private relaxedTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: AuditWriterOptions,
    private readonly fd: number,
    private readonly lockFile: string,
    tail: Tail,
  ) {
    this.offset = tail.size;
    this.seq = this.durableSeq = tail.seq;
    this.hash = this.durableHash = tail.hash;
    if (options.durability === 'relaxed') {
      this.relaxedTimer = setInterval(() => fs.fdatasync(fd, () => undefined), 1000);
      this.relaxedTimer.unref();
    }
  }

  get healthy(): boolean {
    return this._healthy;
  }

  /** The seq of the last durable record. */
  get lastSeq(): number {
    return this.durableSeq;
  }

  append(event: AuditEvent, options?: AppendOptions): Promise<void> {
    if (this.closed) return Promise.reject(new AuditWriteError('the audit writer is closed'));
    const seq = this.seq + 1;
    const line = serializeRecord({ seq, prev: this.hash, ...event } as ChainedRecord);
    const hash = sha256(line);
    this.seq = seq;
    this.hash = hash;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, hash, seq, resolve, reject });
      if (this.flushing || this.scheduled) return; // the running or next flush takes it
      if (!options?.lazy) {
        if (this.lazyTimer) clearTimeout(this.lazyTimer);
        this.lazyTimer = null;
        this.scheduled = true;
        setImmediate(() => void this.flush());
      } else if (!this.lazyTimer) {
        this.lazyTimer = setTimeout(() => {
          this.lazyTimer = null;
          if (!this.flushing && !this.scheduled) void this.flush();
        }, LAZY_FLUSH_MS);
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    this.flushing = true;
    const batch = this.queue;
    this.queue = [];
    let text = '';
    for (const p of batch) text += `${p.line}\n`;
    const buf = Buffer.from(text, 'utf8');
    try {
      // The write itself goes to the page cache and is synchronous: a thread-pool round trip
      // per batch cost more CPU than the copy (measured). The fdatasync, which waits on the
      // device, stays asynchronous.
      let done = 0;
      while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done, this.offset + done);
      if (this.options.durability === 'strict') await fdatasync(this.fd);
      this.offset += buf.length;
      const last = batch[batch.length - 1];
      this.durableSeq = last.seq;
      this.durableHash = last.hash;
      if (!this._healthy) {
        this._healthy = true;
        this.options.onHealthChange?.(true, { since: this.outageSince, refusedRecords: this.refusedRecords });
      }
      for (const p of batch) p.resolve();
    } catch (thrown) {
      const err = new AuditWriteError(`audit write failed: ${(thrown as Error).message}`);
      // Cut off whatever part of the batch reached the file; the next batch rewrites from here.
      await ftruncate(this.fd, this.offset).catch(() => undefined);
      // Everything queued behind the failed batch chains from it: reject it all and rewind.
      const dropped = batch.concat(this.queue);
      this.queue = [];
      this.seq = this.durableSeq;
      this.hash = this.durableHash;
      if (this._healthy) {
        this._healthy = false;
        this.outageSince = new Date().toISOString();
        this.refusedRecords = 0;
        this.refusedRecords += dropped.length;
        this.options.onHealthChange?.(false, { error: err, since: this.outageSince, refusedRecords: dropped.length });
      } else this.refusedRecords += dropped.length;
      for (const p of dropped) p.reject(err);
    } finally {
      this.flushing = false;
    }
    if (this.queue.length > 0) void this.flush();
    else if (this.idle) this.idle();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.flushing || this.scheduled || this.queue.length) {
      await new Promise<void>((resolve) => (this.idle = resolve));
    }
    this.closed = true;
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    if (this.relaxedTimer) clearInterval(this.relaxedTimer);
    try {
      await fdatasync(this.fd);
    } finally {
      closeSync(this.fd);
      heldLocks.delete(this.lockFile);
      try {
        unlinkSync(this.lockFile);
      } catch {
        /* already gone */
      }
    }
  }
}

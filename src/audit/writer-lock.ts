/**
 * One writer per audit directory, enforced by the kernel rather than guessed from a pid.
 *
 * The writer holds an exclusive flock(2) on `audit.lock` through a file descriptor it keeps open
 * for as long as it runs. The kernel drops the lock when that descriptor's open file description
 * is closed, which on any exit — `kill -9`, an OOM kill, a crash — happens while the process
 * exits, before it becomes a zombie. So a lock is held exactly while its holder can still write:
 * no pid is checked, and PID namespaces, pid reuse, zombies and a restarted container's pid 1
 * do not matter. Two containers on one node that mount the same volume share one kernel and one
 * inode, and so one lock. docs/audit-lock.md says what each kind of storage guarantees and why
 * flock was chosen.
 *
 * The file's content is information, not the lock: who holds it (pid, host, pid namespace, boot,
 * start time) and a writer `epoch` that grows by one with each writer. A holder that was still
 * recorded as holding when we got the lock died without closing: the writer records a
 * `writer_takeover` naming it. The file is never deleted: deleting it while a writer holds the
 * lock would let the next one lock a new inode beside it, and two writers would share the trail.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, readlinkSync, readSync, fstatSync, writeSync, constants as fsc } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditWriteError } from './segments';

export const LOCK_FILE = 'audit.lock';

/** How long a start waits for a lock whose holder may still be exiting (a restart right after kill -9). */
export const DEFAULT_LOCK_WAIT_MS = 3000;
const POLL_MS = 25;

/** The native flock, loaded once; a missing build fails closed with the fix in the message. */
type Flock = (fd: number, flags: 'ex' | 'exnb' | 'un') => void;
let flockImpl: Flock | null = null;
function flock(): Flock {
  if (flockImpl) return flockImpl;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    flockImpl = (require('fs-ext') as { flockSync: Flock }).flockSync;
  } catch (err) {
    throw new AuditWriteError(
      `cannot load the native module fs-ext that locks the audit directory (${(err as Error).message.split('\n')[0]}); rebuild it for this Node with 'npm rebuild fs-ext' (needs a C++ compiler, make and python3) and retry`,
    );
  }
  return flockImpl;
}

/** Who holds (or last held) a lock, as written in the lock file. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** The holder's PID namespace (`pid:[inode]`): its pid means something only there. */
  readonly pid_ns: string | null;
  /** The kernel's boot id: a different one means the holder's machine rebooted since. */
  readonly boot_id: string | null;
  readonly started_at: string;
  /** Grows by one with each writer of this directory; a fencing token for its records. */
  readonly epoch: number;
  /** `held` while the writer runs; `released` after a clean close. */
  readonly state: 'held' | 'released';
}

/** A lock this process holds. */
export interface HeldLock {
  readonly file: string;
  readonly fd: number;
  readonly holder: LockHolder;
  /**
   * The previous holder when it never released the lock (it died), or the pid of a lock file
   * from a version that kept only a pid; null after a clean release or on a new directory.
   */
  readonly stale: LockHolder | { readonly pid: number; readonly format: 'pid-file' } | null;
  /** How long acquiring waited for the lock to be released. */
  readonly waitedMs: number;
  /** The file's content before we wrote ours, put back if the start fails (abandonLock). */
  readonly previousText: string;
}

/** Options of acquireLock. */
export interface LockOptions {
  /** How long to wait for a held lock before refusing. Default DEFAULT_LOCK_WAIT_MS. */
  readonly waitMs?: number;
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

/** The lock file's content as read through our own descriptor. */
function readContent(fd: number): string {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(Math.min(size, 64 * 1024));
  const n = size ? readSync(fd, buf, 0, buf.length, 0) : 0;
  return buf.subarray(0, n).toString('utf8').trim();
}

type Parsed = { holder: LockHolder } | { pidFile: number } | null;

function parseContent(text: string): Parsed {
  if (!text) return null;
  if (/^\d+$/.test(text)) return { pidFile: Number(text) };
  try {
    const h = JSON.parse(text) as LockHolder;
    if (h && typeof h.pid === 'number' && typeof h.epoch === 'number') return { holder: h };
  } catch {
    /* unreadable: treated as a new lock */
  }
  return null;
}

function describe(h: LockHolder | null): string {
  if (!h) return 'a process that has not yet written its name into the lock file';
  const here = h.host === os.hostname() && h.boot_id === readOrNull('/proc/sys/kernel/random/boot_id');
  const ns = h.pid_ns && h.pid_ns !== pidNamespace() ? ` in another PID namespace (${h.pid_ns})` : '';
  return `Portcullis pid ${h.pid}${ns} on ${here ? 'this machine' : `host ${h.host}`}, writer epoch ${h.epoch}, started ${h.started_at}`;
}

/**
 * Takes the directory's lock, waiting up to `waitMs` for a holder that is still exiting.
 * Throws AuditWriteError naming the holder and what to do when another writer keeps it.
 */
export async function acquireLock(dir: string, options: LockOptions = {}): Promise<HeldLock> {
  const lockFlock = flock();
  const file = path.join(dir, LOCK_FILE);
  const fd = openSync(file, fsc.O_RDWR | fsc.O_CREAT, 0o600);
  const began = performance.now();
  const deadline = began + (options.waitMs ?? DEFAULT_LOCK_WAIT_MS);
  try {
    let waitedMs = 0;
    for (;;) {
      try {
        lockFlock(fd, 'exnb');
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') {
          throw new AuditWriteError(
            `cannot lock ${file}: ${(err as Error).message} (the audit directory needs a filesystem with working flock; see docs/audit-lock.md)`,
          );
        }
        if (performance.now() >= deadline) {
          const parsed = parseContent(readContent(fd));
          const holder = parsed && 'holder' in parsed ? parsed.holder : null;
          throw new AuditWriteError(
            `the audit directory ${dir} is locked by another writer: ${describe(holder)}; waited ${Math.round(performance.now() - began)} ms. ` +
              `A trail has exactly one writer: stop that gateway first, or give this one its own audit.path. ` +
              `The kernel holds this lock for the writer's open file and drops it the moment that process exits; deleting ${file} does not release it and would let two writers in.`,
          );
        }
        await sleep(POLL_MS);
        waitedMs = Math.round(performance.now() - began);
      }
    }
    const previousText = readContent(fd);
    const parsed = parseContent(previousText);
    const previous = parsed && 'holder' in parsed ? parsed.holder : null;
    const holder: LockHolder = {
      pid: process.pid,
      host: os.hostname(),
      pid_ns: pidNamespace(),
      boot_id: readOrNull('/proc/sys/kernel/random/boot_id'),
      started_at: new Date().toISOString(),
      epoch: (previous?.epoch ?? 0) + 1,
      state: 'held',
    };
    writeHolder(fd, holder);
    const stale = previous?.state === 'held' ? previous : parsed && 'pidFile' in parsed ? { pid: parsed.pidFile, format: 'pid-file' as const } : null;
    return { file, fd, holder, stale, waitedMs, previousText };
  } catch (err) {
    closeSync(fd); // drops the lock too, if we had it
    throw err;
  }
}

function writeHolder(fd: number, holder: LockHolder): void {
  writeText(fd, `${JSON.stringify(holder)}\n`);
}

function writeText(fd: number, content: string): void {
  const text = Buffer.from(content);
  ftruncateSync(fd, 0);
  writeSync(fd, text, 0, text.length, 0);
  fsyncSync(fd);
}

/** Locks already dropped: dropping twice would close a descriptor number reused since. */
const dropped = new WeakSet<HeldLock>();

/** Marks the lock released (so the next writer does not report a takeover) and drops it. */
export function releaseLock(lock: HeldLock): void {
  if (dropped.has(lock)) return;
  dropped.add(lock);
  try {
    writeHolder(lock.fd, { ...lock.holder, state: 'released' });
  } catch {
    /* the next writer then reports a takeover: noisy, not unsafe */
  }
  closeSync(lock.fd);
}

/**
 * Drops a lock from a start that failed before it wrote anything, putting the previous holder's
 * record back: a dead writer's takeover is then still reported by the next start that succeeds.
 */
export function abandonLock(lock: HeldLock): void {
  if (dropped.has(lock)) return;
  dropped.add(lock);
  try {
    writeText(lock.fd, lock.previousText ? `${lock.previousText}\n` : '');
  } catch {
    /* best effort */
  }
  closeSync(lock.fd);
}

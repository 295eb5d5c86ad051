/**
 * One writer per audit directory: a lock file holding the writer's pid. A lock left by a dead
 * process (or by an earlier incarnation of this pid, as for a container's pid 1) is taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { AuditWriteError } from './segments';

export const LOCK_FILE = 'audit.lock';

/** Lock files this process holds (several gateways may run in one process, e.g. in tests). */
const heldLocks = new Set<string>();

/** Takes the directory's lock; returns the lock file's path. Throws when a live process holds it. */
export function acquireLock(dir: string): string {
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

/** Releases a lock taken by acquireLock. */
export function releaseLock(lock: string): void {
  heldLocks.delete(lock);
  try {
    unlinkSync(lock);
  } catch {
    /* already gone */
  }
}

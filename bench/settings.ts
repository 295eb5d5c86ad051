/**
 * Benchmark settings read from the environment, shared by `npm run bench` and
 * `npm run bench:audit`. A malformed value stops the run before anything starts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A non-negative number from `name`, or `fallback` when unset or empty. */
export function numberSetting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, not "${raw}"`);
  return value;
}

/** A comma-separated list of positive integers from `name`, or `fallback` when unset or empty. */
export function listSetting(name: string, fallback: readonly number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return [...fallback];
  const list = raw.split(',').map(Number);
  if (!list.every((n) => Number.isInteger(n) && n > 0)) throw new Error(`${name} must list positive integers, not "${raw}"`);
  return list;
}

/**
 * A fresh work directory for one run (configs, audit trails) in the system temp dir. An
 * interrupted run (SIGINT, SIGTERM) removes it, unless `keep`, and exits 130; the children exit
 * when their IPC channel closes.
 */
export function workDirectory(prefix: string, keep: boolean): string {
  const work = mkdtempSync(path.join(os.tmpdir(), prefix));
  const interrupted = () => {
    if (!keep) rmSync(work, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  return work;
}

/**
 * Watches a set of files the configuration names (the agent listener's TLS files, a rotating
 * secret, an upstream client certificate) and reports when their content changes. Every way a
 * file is replaced in production is covered by watching the files' directories, not the files:
 * an in-place write, a rename into place (Vault Agent, editors), and Kubernetes' secret mounts,
 * which swap a `..data` directory symlink by rename. Any event in a directory re-reads the set;
 * a poll every `pollMs` is the backstop for a watch that misses (or cannot be set up). Only a
 * change of content counts, and only once it has held for `settleMs`, so a file caught half
 * written (truncated before its write, a certificate replaced before its key) is not reported
 * until the writer is done.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import path from 'node:path';

/** What a watch of a file set reports to. */
export interface FileSetHandler {
  /**
   * The files' contents (in the order given) changed and held. Returns false to refuse the set
   * (the caller logs why): it is not offered again until the files change again.
   */
  changed(contents: readonly string[]): boolean;
  /** A file could not be read once the change held (removed, or unreadable); reported once per cause until the files change. */
  unreadable(err: NodeJS.ErrnoException): void;
}

/** Options of one watch. */
export interface FileSetWatchOptions {
  readonly files: readonly string[];
  /** Interval of the content check behind the directory watches (ms). */
  readonly pollMs: number;
  /** How long a new content must hold before it is reported (ms). Default 100. */
  readonly settleMs?: number;
  /** The digest of the contents in use (fileSetDigest); null: the first check reports what it reads. */
  readonly initial: string | null;
}

/** A running watch. */
export interface FileSetWatch {
  /** Re-reads the files now (as an event would). */
  check(): void;
  /** Stops the watches and the poll. */
  close(): void;
}

/** The digest of one content set, as the watch compares them. */
export function fileSetDigest(contents: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(contents)).digest('hex');
}

type Read = { readonly key: string; readonly contents: readonly string[] } | { readonly key: string; readonly error: NodeJS.ErrnoException };

function readSet(files: readonly string[]): Read {
  try {
    const contents = files.map((f) => readFileSync(f, 'utf8'));
    return { key: fileSetDigest(contents), contents };
  } catch (err) {
    return { key: `read:${(err as NodeJS.ErrnoException).code ?? 'error'}`, error: err as NodeJS.ErrnoException };
  }
}

/** Starts watching `files`; the first check runs now when `initial` is null. */
export function watchFileSet(options: FileSetWatchOptions, handler: FileSetHandler): FileSetWatch {
  const { files, pollMs } = options;
  const settleMs = options.settleMs ?? 100;
  /** The key of the set in use, or of the last one reported (accepted, refused or unreadable). */
  let reported: string | null = options.initial;
  let pending: string | null = null;
  let settle: NodeJS.Timeout | null = null;
  let closed = false;

  const deliver = (r: Read) => {
    reported = r.key;
    if ('error' in r) {
      handler.unreadable(r.error);
      return;
    }
    // A refused set stays reported: it is not offered again until the content changes.
    handler.changed(r.contents);
  };
  const confirm = () => {
    settle = null;
    if (closed) return;
    const r = readSet(files);
    if (r.key === reported) {
      pending = null;
      return;
    }
    if (r.key === pending) {
      pending = null;
      deliver(r);
      return;
    }
    // Still changing: wait for it to hold.
    pending = r.key;
    settle = setTimeout(confirm, settleMs);
    settle.unref();
  };
  const check = () => {
    if (closed || settle !== null) return;
    const r = readSet(files);
    if (r.key === reported) return;
    if (reported === null) {
      deliver(r);
      return;
    }
    pending = r.key;
    settle = setTimeout(confirm, settleMs);
    settle.unref();
  };

  const watchers: FSWatcher[] = [];
  for (const dir of new Set(files.map((f) => path.dirname(f)))) {
    try {
      const w = watch(dir, { persistent: false }, () => check());
      w.on('error', () => undefined);
      watchers.push(w);
    } catch {
      /* the poll still sees changes */
    }
  }
  const poll = setInterval(check, pollMs);
  poll.unref();
  if (reported === null) check();
  return {
    check,
    close() {
      closed = true;
      clearInterval(poll);
      if (settle !== null) clearTimeout(settle);
      for (const w of watchers) w.close();
    },
  };
}

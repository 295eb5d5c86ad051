/**
 * Tells the policy store when the policy's files may have changed. Two sources, because either
 * alone misses edits:
 *
 * - one non-recursive `fs.watch` per directory (inotify on Linux watches the directory, which
 *   names every entry created, renamed over or written in it). Node's recursive watch on Linux
 *   watches files, and a file saved by rename (`sed -i`, `mv`, editors writing a temp file) is
 *   a new inode it never watches again. The store re-arms the set after every look at the
 *   directory (`arm`), so directories that appear, disappear or are replaced are followed;
 *   events are debounced into one `changed('watch')`.
 * - a poll every `pollMs`: `changed('poll')`, on which the store hashes the sources and
 *   rebuilds if they differ from the policy in force. It catches what no event reports: a
 *   symlink's target edited outside the watched directories, a network file system, a watch
 *   that failed to arm (inotify limits), an edit made while the watches were re-arming.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';

/** What the watcher calls. */
export interface PolicyWatcherEvents {
  /** The files may have changed; `watch` after the quiet period, `poll` on each tick. */
  changed(cause: 'watch' | 'poll'): void;
  /** A directory could not be watched; the poll still covers it. */
  watchFailed(dir: string, error: Error): void;
}

/** Timings. */
export interface PolicyWatcherOptions {
  /** Quiet period after the last event before `changed('watch')`. */
  readonly debounceMs: number;
  /** Interval of `changed('poll')`. */
  readonly pollMs: number;
}

interface Watch {
  readonly watcher: FSWatcher;
  /** The directory's inode when armed: a directory replaced by rename is watched again. */
  readonly ino: number;
}

/** Per-directory watches plus a poll. */
export class PolicyWatcher {
  private readonly watches = new Map<string, Watch>();
  private debounce: NodeJS.Timeout | null = null;
  private readonly poll: NodeJS.Timeout;

  constructor(
    private readonly options: PolicyWatcherOptions,
    private readonly events: PolicyWatcherEvents,
  ) {
    this.poll = setInterval(() => events.changed('poll'), options.pollMs);
    this.poll.unref();
  }

  /** True while a debounced `changed('watch')` is pending. */
  get pending(): boolean {
    return this.debounce !== null;
  }

  /** Watches exactly `directories`: new ones armed, gone or replaced ones re-armed or closed. */
  arm(directories: readonly string[]): void {
    const wanted = new Set(directories);
    for (const [dir, w] of this.watches) {
      if (!wanted.has(dir) || inode(dir) !== w.ino) this.drop(dir);
    }
    for (const dir of wanted) {
      if (this.watches.has(dir)) continue;
      const ino = inode(dir);
      if (ino === null) continue; // gone again; the next look re-arms
      try {
        const watcher = watch(dir, { persistent: false }, () => this.kick());
        // The directory was removed or became unreadable: stop, and look again.
        watcher.on('error', () => {
          this.drop(dir);
          this.kick();
        });
        this.watches.set(dir, { watcher, ino });
      } catch (err) {
        this.events.watchFailed(dir, err as Error);
      }
    }
  }

  /** Stops watching and polling. */
  close(): void {
    clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
    for (const dir of [...this.watches.keys()]) this.drop(dir);
  }

  private drop(dir: string): void {
    this.watches.get(dir)?.watcher.close();
    this.watches.delete(dir);
  }

  private kick(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.events.changed('watch');
    }, this.options.debounceMs);
  }
}

function inode(dir: string): number | null {
  try {
    return statSync(dir).ino;
  } catch {
    return null;
  }
}

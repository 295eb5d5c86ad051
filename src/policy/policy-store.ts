/**
 * Holds the policy in force and replaces it atomically. When the policy directory changes,
 * it recompiles; the new engine is swapped in only if compilation and instantiation succeed,
 * otherwise the old one stays in force and the error is reported.
 */
import { watch, type FSWatcher } from 'node:fs';
import { compilePolicy } from './bundle';
import { WasmPolicyEngine, type PolicyEngine } from './engine';

/** Where the store reports its life-cycle. */
export interface PolicyStoreEvents {
  onLoaded?(revision: string, previous: string | null): void;
  onRejected?(error: Error): void;
}

/** Options of the store (from the `policy` section of the config). */
export interface PolicyStoreOptions {
  readonly path: string;
  readonly entrypoint: string;
  readonly opa: string | null;
  readonly watch: boolean;
  /** Quiet period after the last file change before recompiling. */
  readonly debounceMs?: number;
  /** `policy.require_tests`, passed on to compilePolicy. */
  readonly requireTests?: boolean;
}

/** The current policy, swappable. */
export class PolicyStore {
  private engine: PolicyEngine | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private building: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly options: PolicyStoreOptions,
    private readonly events: PolicyStoreEvents = {},
  ) {}

  /** The engine in force; throws if load() has not succeeded. */
  get current(): PolicyEngine {
    if (!this.engine) throw new Error('no policy loaded');
    return this.engine;
  }

  /** True once a policy is in force. */
  get ready(): boolean {
    return this.engine !== null;
  }

  /** Compiles and swaps in the policy. Rejects (leaving the old one) on failure. */
  async load(): Promise<string> {
    const compiled = await compilePolicy(this.options);
    const next = await WasmPolicyEngine.create(compiled, this.options.entrypoint);
    const previous = this.engine?.revision ?? null;
    this.engine = next;
    if (previous !== next.revision) this.events.onLoaded?.(next.revision, previous);
    return next.revision;
  }

  /** Starts watching the policy directory for changes. */
  startWatching(): void {
    if (!this.options.watch || this.watcher) return;
    this.watcher = watch(this.options.path, { recursive: true }, () => this.changed());
    this.watcher.on('error', (err) => this.events.onRejected?.(err));
  }

  /** Resolves when no rebuild is pending or running (for tests and shutdown). */
  async settled(): Promise<void> {
    while (this.timer || this.building) {
      if (this.building) await this.building;
      else await new Promise((r) => setTimeout(r, 10));
    }
  }

  private changed(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.rebuild();
    }, this.options.debounceMs ?? 150);
  }

  private rebuild(): void {
    if (this.building) {
      this.again = true;
      return;
    }
    this.building = this.load()
      .then(
        () => undefined,
        (err: Error) => this.events.onRejected?.(err),
      )
      .finally(() => {
        this.building = null;
        if (this.again) {
          this.again = false;
          this.rebuild();
        }
      });
  }

  /** Stops watching. */
  close(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

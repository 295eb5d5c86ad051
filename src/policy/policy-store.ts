/**
 * Holds the policy in force and replaces it atomically. When the policy's sources change (the
 * watcher's events or its poll, policy-watcher.ts), it hashes them (policy-sources.ts) and,
 * if they differ from the policy in force, recompiles; the new engine is swapped in only if
 * compilation and instantiation succeed, otherwise the old one stays in force and the error is
 * reported. It keeps the revision on disk beside the revision in force, so a difference (drift)
 * and its cause are visible, and a return to a good policy after a rejection is reported too.
 */
import { createHash } from 'node:crypto';
import { type CompiledPolicy, compilePolicy, compileRegoBundleDirectory } from './bundle';
import { loadBundle } from './bundle-load';
import { WasmPolicyEngine, type PolicyEngine } from './engine';
import type { BundleFacts } from './bundle-load';
import type { SerialFloor } from './bundle-manifest';
import type { PolicySigningConfig } from '../config/types';
import { type BundleVerificationOptions, bundleVerifier, verificationOptions } from './bundle-signature';
import { readSources, type SourceFile } from './policy-sources';
import { PolicyWatcher } from './policy-watcher';

/** A change that was not put in force. */
export interface PolicyRejection {
  /** The revision on disk that was rejected, or null when the sources could not be read. */
  readonly revision: string | null;
  readonly error: string;
  readonly time: string;
}

/** The revision in force against the revision on disk. */
export interface PolicyState {
  readonly inForce: string | null;
  /** At the last look; null when the sources could not be read. */
  readonly onDisk: string | null;
  /** True when the files on disk are not the policy in force. */
  readonly drift: boolean;
  /** Why the revision on disk is not in force, while it is not. */
  readonly lastRejection: PolicyRejection | null;
}

/** A policy put in force. */
export interface LoadedPolicy {
  readonly revision: string;
  /** A bundle file: its digest, serial and signature (bundle-load.ts). */
  readonly bundle?: BundleFacts;
  readonly files: readonly SourceFile[];
  readonly previous: string | null;
  /** Calls to builtins that behave differently from OPA (docs/policy.md, Builtins). */
  readonly warnings: readonly string[];
  /** The rejection this load ends (a broken change fixed or reverted), if any. */
  readonly recovers: PolicyRejection | null;
}

/** Where the store reports its life-cycle. */
export interface PolicyStoreEvents {
  onLoaded?(loaded: LoadedPolicy): void;
  onRejected?(error: Error, rejection: PolicyRejection): void;
  /** The state changed (drift began or ended, another revision on disk). */
  onState?(state: PolicyState): void;
  /** The poll found a change no watch event reported, or a directory could not be watched. */
  onWatchGap?(detail: { readonly cause: 'poll' | 'watch_failed'; readonly revision?: string; readonly dir?: string; readonly error?: string }): void;
}

/** Options of the store (from the `policy` section of the config). */
export interface PolicyStoreOptions {
  readonly path: string;
  readonly entrypoint: string;
  readonly opa: string | null;
  readonly watch: boolean;
  /** Interval of the content-hash poll behind the file watches. */
  readonly pollMs: number;
  /** Quiet period after the last file change before recompiling. */
  readonly debounceMs?: number;
  /** `policy.require_tests`, passed on to compilePolicy. */
  readonly requireTests?: boolean;
  /** `policy.signing`: a bundle must be signed by this key (bundle-signature.ts). */
  readonly signing?: PolicySigningConfig | null;
  /** The highest bundle serial accepted before this store (from the trail); raised by each load. */
  readonly floor?: SerialFloor | null;
}

/** The current policy, swappable. */
export class PolicyStore {
  private engine: PolicyEngine | null = null;
  /** The content address of the sources in force (what a look compares with). */
  private source: string | null = null;
  private floor: SerialFloor | null;
  private readonly verification: BundleVerificationOptions | null;
  private files: readonly SourceFile[] = [];
  private warnings: readonly string[] = [];
  private watcher: PolicyWatcher | null = null;
  private building: Promise<void> | null = null;
  private again: 'watch' | 'poll' | null = null;
  private onDisk: string | null = null;
  private rejection: PolicyRejection | null = null;
  private reported = '';

  constructor(
    private readonly options: PolicyStoreOptions,
    private readonly events: PolicyStoreEvents = {},
  ) {
    this.floor = options.floor ?? null;
    this.verification = options.signing ? verificationOptions(options.signing) : null;
  }

  /** The engine in force; throws if load() has not succeeded. */
  get current(): PolicyEngine {
    if (!this.engine) throw new Error('no policy loaded');
    return this.engine;
  }

  /** True once a policy is in force. */
  get ready(): boolean {
    return this.engine !== null;
  }

  /** The revision in force against the revision on disk at the last look. */
  get state(): PolicyState {
    const inForce = this.engine?.revision ?? null;
    return { inForce, onDisk: this.onDisk, drift: this.onDisk !== this.source, lastRejection: this.rejection };
  }

  /** Compiles and swaps in the policy. Rejects (leaving the old one) on failure. */
  async load(): Promise<string> {
    const compiled = await compilePolicy({ ...this.options, signing: this.verification, floor: this.floor });
    return this.put(compiled, await WasmPolicyEngine.create(compiled, this.options.entrypoint));
  }

  /** Swaps in a compiled policy and reports it. */
  private put(compiled: CompiledPolicy, next: WasmPolicyEngine): string {
    const previous = this.engine?.revision ?? null;
    const previousSource = this.source;
    const recovers = this.rejection;
    this.engine = next;
    this.source = compiled.source;
    this.files = compiled.files;
    this.warnings = compiled.warnings;
    this.onDisk = compiled.source;
    this.rejection = null;
    const b = compiled.bundle;
    if (b?.serial != null) this.floor = { serial: b.serial, bundleSha256: b.sha256 };
    if (previousSource !== compiled.source || recovers)
      this.events.onLoaded?.({ revision: next.revision, files: compiled.files, warnings: compiled.warnings, previous, recovers, ...(b ? { bundle: b } : {}) });
    this.report();
    return next.revision;
  }

  /**
   * Puts a bundle's bytes in force (a bundle service's download, bundle-service.ts): unpacked,
   * verified, ordered and compiled as a bundle file is (bundle-load.ts). Rejects, leaving the
   * policy in force and reporting the refusal, when any step refuses it.
   */
  async loadBundleBytes(bytes: Buffer, source: string): Promise<string> {
    const revision = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    try {
      const loaded = await loadBundle(bytes, {
        source,
        entrypoint: this.options.entrypoint,
        verify: this.verification ? bundleVerifier(this.verification) : null,
        floor: this.floor,
        compileRego: (dir) => compileRegoBundleDirectory(this.options, dir),
      });
      const compiled: CompiledPolicy = { ...loaded.contents, revision: loaded.revision, source: revision, bundle: loaded.facts, files: [], warnings: [] };
      return await this.put(compiled, await WasmPolicyEngine.create(compiled, this.options.entrypoint));
    } catch (err) {
      if (this.rejection?.revision !== revision) this.reject(err as Error, revision);
      throw err;
    }
  }

  /** Starts watching the policy's files (and polling them). */
  startWatching(): void {
    if (!this.options.watch || this.watcher) return;
    this.watcher = new PolicyWatcher(
      { debounceMs: this.options.debounceMs ?? 150, pollMs: this.options.pollMs },
      {
        changed: (cause) => this.refresh(cause),
        watchFailed: (dir, err) => this.events.onWatchGap?.({ cause: 'watch_failed', dir, error: err.message }),
      },
    );
    this.refresh('watch');
  }

  /** Resolves when no rebuild is pending or running (for tests and shutdown). */
  async settled(): Promise<void> {
    while (this.watcher?.pending || this.building) {
      if (this.building) await this.building;
      else await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Stops watching, then waits for a build in progress, so no event follows. */
  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = null;
    await this.settled();
  }

  /** Looks at the sources; one look at a time, and one more if asked during it. */
  private refresh(cause: 'watch' | 'poll'): void {
    if (this.building) {
      if (this.again !== 'watch') this.again = cause;
      return;
    }
    this.building = this.look(cause).finally(() => {
      this.building = null;
      const next = this.again;
      this.again = null;
      if (next && this.watcher) this.refresh(next);
    });
  }

  private async look(cause: 'watch' | 'poll'): Promise<void> {
    let revision: string;
    try {
      const sources = await readSources(this.options.path, { withTests: this.options.requireTests === true });
      this.watcher?.arm(sources.directories);
      revision = sources.revision;
    } catch (err) {
      // Unreadable (removed, a symlink loop): the policy in force stays, and that is drift.
      if (this.rejection && this.rejection.revision === null) return;
      return this.reject(err as Error, null);
    }
    this.onDisk = revision;
    const inForce = this.engine?.revision ?? null;
    if (revision === this.source) {
      // Back to the policy in force (a broken change reverted): that ends the rejection.
      if (this.rejection) {
        const recovers = this.rejection;
        this.rejection = null;
        this.events.onLoaded?.({ revision: inForce ?? revision, files: this.files, warnings: this.warnings, previous: inForce, recovers });
      }
      return this.report();
    }
    // A rejected revision is built again only once its files change: editors' swap files and
    // the poll would otherwise report the same error again and again.
    if (this.rejection?.revision === revision) return this.report();
    if (cause === 'poll' && !this.watcher?.pending) this.events.onWatchGap?.({ cause: 'poll', revision });
    try {
      await this.load();
    } catch (err) {
      this.reject(err as Error, revision);
    }
  }

  private reject(error: Error, revision: string | null): void {
    this.rejection = { revision, error: error.message, time: new Date().toISOString() };
    this.onDisk = revision;
    this.events.onRejected?.(error, this.rejection);
    this.report();
  }

  /** Reports the state when it differs from the last report. */
  private report(): void {
    const state = this.state;
    const key = JSON.stringify([state.inForce, state.onDisk, state.lastRejection?.time]);
    if (key === this.reported) return;
    this.reported = key;
    this.events.onState?.(state);
  }
}

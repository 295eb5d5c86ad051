/**
 * The token cache of one OAuth credential: entries by key (the scopes asked for; for a token
 * exchange also the subject and audience), each used until its refresh time and never after its
 * expiry, with one fetch in flight per key however many calls wait for it (single flight).
 *
 * Refresh ahead: from `refreshAtMs` the next call waits for a new token rather than use one
 * about to expire. If that refresh fails while the cached token is still valid, calls keep
 * using it for RETRY_AFTER_MS before asking again, so a slow endpoint does not stall every call
 * for timeout_ms. After `expiresAtMs` an entry is never used. A failure with nothing valid to
 * fall back on is answered again, at once, for FAIL_FAST_MS.
 */

/** What the cache needs of an entry. */
export interface CachedToken {
  readonly expiresAtMs: number;
  readonly refreshAtMs: number;
}

/** How long a still-valid token is used after a failed refresh before the next attempt. */
export const RETRY_AFTER_MS = 5_000;
/**
 * With nothing valid cached, how long after a failed fetch calls are refused at once with that
 * failure instead of asking the endpoint again: an outage costs the endpoint one request per
 * key per second, not one per call.
 */
export const FAIL_FAST_MS = 1_000;
/** Most entries kept; beyond it the oldest is dropped (a token exchange has one per subject). */
export const MAX_ENTRIES = 10_000;

/** When to refresh a token of this lifetime: `refreshBeforeS` before expiry, at most half its lifetime before. */
export function refreshAt(nowMs: number, expiresAtMs: number, refreshBeforeS: number): number {
  return expiresAtMs - Math.min(refreshBeforeS * 1000, (expiresAtMs - nowMs) / 2);
}

/** Entries by key, with single-flight fetches. */
export class TokenCache<E extends CachedToken> {
  readonly #entries = new Map<string, E>();
  readonly #inflight = new Map<string, Promise<E>>();
  /** Keys whose refresh failed: not asked again before this time while the old entry is valid. */
  readonly #retryAt = new Map<string, number>();
  /** Keys whose fetch failed with nothing valid to fall back on: refused at once until `until`. */
  readonly #failed = new Map<string, { readonly until: number; readonly err: unknown }>();

  /** The entry a call may use now without waiting, or null. Allocation-free. */
  usable(key: string, nowMs: number): E | null {
    const e = this.#entries.get(key);
    if (e === undefined) return null;
    if (nowMs < e.refreshAtMs) return e;
    if (nowMs < e.expiresAtMs && (this.#retryAt.get(key) ?? 0) > nowMs) return e;
    return null;
  }

  /**
   * The entry for `key` from `fetch`, one fetch in flight per key. A failed fetch rejects every
   * waiter, unless the entry it was to refresh is still valid: then they get that one.
   */
  fetch(key: string, fetch: () => Promise<E>): Promise<E> {
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const failed = this.#failed.get(key);
    if (failed !== undefined) {
      if (Date.now() < failed.until) return Promise.reject(failed.err);
      this.#failed.delete(key);
    }
    const p = fetch()
      .then(
        (e) => {
          this.#retryAt.delete(key);
          this.#entries.delete(key);
          this.#entries.set(key, e);
          this.#evict(Date.now());
          return e;
        },
        (err: unknown) => {
          const old = this.#entries.get(key);
          const now = Date.now();
          if (old !== undefined && now < old.expiresAtMs) {
            this.#retryAt.set(key, now + RETRY_AFTER_MS);
            return old;
          }
          this.#failed.delete(key);
          this.#failed.set(key, { until: now + FAIL_FAST_MS, err });
          // Bounded like the entries: distinct refused keys (subject tokens) cannot grow it for ever.
          if (this.#failed.size > MAX_ENTRIES)
            for (const [k, f] of this.#failed) {
              if (this.#failed.size <= MAX_ENTRIES && f.until > now) break;
              this.#failed.delete(k);
            }
          throw err;
        },
      )
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  /** Drops expired entries, then the oldest beyond MAX_ENTRIES. */
  #evict(nowMs: number): void {
    for (const [k, e] of this.#entries) {
      if (e.expiresAtMs <= nowMs) {
        this.#entries.delete(k);
        this.#retryAt.delete(k);
      }
    }
    for (const k of this.#entries.keys()) {
      if (this.#entries.size <= MAX_ENTRIES) break;
      this.#entries.delete(k);
      this.#retryAt.delete(k);
    }
  }

  /** The earliest expiry of a valid entry, or null when none is cached. */
  soonestExpiry(nowMs: number): number | null {
    let soonest: number | null = null;
    for (const e of this.#entries.values()) if (e.expiresAtMs > nowMs && (soonest === null || e.expiresAtMs < soonest)) soonest = e.expiresAtMs;
    return soonest;
  }
}

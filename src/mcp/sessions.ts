/**
 * MCP sessions bound to agents. A session id is learnt only from the upstream's answer to an
 * `initialize` the gateway forwarded, and remembered with the agent that sent it; from then on
 * only that agent may present it. An id the gateway never saw created (forged, from before a
 * restart, or ended) is refused before the policy runs, so a stolen session id is worth
 * nothing to another agent. Sessions idle longer than the TTL are forgotten; the table is
 * bounded, evicting the least recently used.
 */

/** One live session. */
interface Entry {
  readonly agent: string | null;
  lastUsed: number;
}

/** What the table says about a presented session id. */
export type SessionCheck = 'ok' | 'unknown' | 'other-agent';

/** Default idle time before a session is forgotten (1 hour). */
export const SESSION_IDLE_MS = 60 * 60 * 1000;
/** Default cap on live sessions per gateway. */
export const MAX_SESSIONS = 10_000;

/** The live MCP sessions of every MCP route. */
export class SessionTable {
  // Map iteration order is insertion order: re-inserting on use keeps it least-recently-used first.
  private readonly entries = new Map<string, Entry>();
  /** The entry last (re)inserted: the end of the iteration order, or null when unknown. */
  private newest: Entry | null = null;

  constructor(
    private readonly idleMs = SESSION_IDLE_MS,
    private readonly max = MAX_SESSIONS,
    private readonly now: () => number = Date.now,
  ) {}

  private static key(route: string, id: string): string {
    return `${route}\u0000${id}`;
  }

  /** Records a session the upstream created in answer to `agent`'s initialize. */
  bind(route: string, id: string, agent: string | null): void {
    const key = SessionTable.key(route, id);
    this.entries.delete(key);
    const e: Entry = { agent, lastUsed: this.now() };
    this.entries.set(key, e);
    this.newest = e;
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** Checks that `agent` may use the session, and marks it used. */
  check(route: string, id: string, agent: string | null): SessionCheck {
    const key = SessionTable.key(route, id);
    const e = this.entries.get(key);
    const t = this.now();
    if (!e) return 'unknown';
    if (t - e.lastUsed > this.idleMs) {
      this.entries.delete(key);
      return 'unknown';
    }
    if (e.agent !== agent) return 'other-agent';
    e.lastUsed = t;
    // Already the most recently used (the common case: one session's calls in a row): moving it
    // to the end would change nothing but cost a delete and a set (half of this method's 9 µs
    // per tools/call under the profiler; docs/benchmarks.md, "MCP call cost — 2026-12-04").
    if (this.newest === e) return 'ok';
    this.entries.delete(key);
    this.entries.set(key, e);
    this.newest = e;
    return 'ok';
  }

  /** Forgets a session (ended by DELETE, or reported gone by the upstream). */
  end(route: string, id: string): void {
    this.entries.delete(SessionTable.key(route, id));
  }

  /** Live sessions (for metrics and tests). */
  get size(): number {
    return this.entries.size;
  }
}

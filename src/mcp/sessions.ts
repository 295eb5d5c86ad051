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
    this.entries.set(key, { agent, lastUsed: this.now() });
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
    this.entries.delete(key);
    this.entries.set(key, e);
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

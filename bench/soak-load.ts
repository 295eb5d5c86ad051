/**
 * The soak benchmark's load generator (bench/soak.ts), in its own process pinned to its own
 * CPU: a fixed mix of REST and MCP calls through one undici Pool, with MCP sessions opened
 * (`initialize`, `notifications/initialized`) and ended (`DELETE`) throughout. Two jobs: a
 * closed-loop capacity measurement (each worker sends its next call when the last is answered),
 * and the soak itself, open-loop at a fixed rate (bench/open-loop.ts), which reports each
 * minute's calls, latencies and failures as soon as every call due in that minute has ended.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { serveChild } from './child';
import { LatencySample, type LatencySummary } from './latency-sample';
import { runOpenLoop } from './open-loop';

/** What every job needs to reach the gateway. */
interface Target {
  readonly origin: string;
  readonly agentKey: string;
  readonly restPath: string;
  readonly mcpPath: string;
  readonly mcpVersion: string;
  /** Live sessions kept open; one is replaced (opened, then the oldest ended) every sessionEveryMs. */
  readonly sessions: number;
  readonly sessionEveryMs: number;
  readonly connections: number;
}

/** Closed loop with `workers` calls outstanding, for `seconds`. */
export interface CapacityJob extends Target {
  readonly type: 'capacity';
  readonly workers: number;
  readonly seconds: number;
}

/** Open loop at `ratePerSecond` for `minutes`. */
export interface SoakJob extends Target {
  readonly type: 'soak';
  readonly ratePerSecond: number;
  readonly minutes: number;
}

/** How the calls of one period went. Latencies from due time (open loop) or send time (closed loop) to end of body, ms. */
export interface PeriodStats {
  /** Mix calls answered 2xx (session opens and ends not counted). */
  readonly ok: number;
  readonly restOk: number;
  readonly mcpOk: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
  /** Answers outside 2xx by status, and MCP answers that were not a tool result (`mcp-not-echoed`). */
  readonly non2xx: Readonly<Record<string, number>>;
  readonly sessionsOpened: number;
  readonly sessionsEnded: number;
  readonly latency: LatencySummary;
  readonly mcpLatency: LatencySummary;
}

/** The capacity job's answer. */
export interface CapacityReply extends PeriodStats {
  readonly type: 'capacity';
  readonly seconds: number;
  readonly perSecond: number;
}

/** Sent once per minute of the soak. */
export interface MinuteMessage extends PeriodStats {
  readonly type: 'minute';
  /** 1-based. */
  readonly minute: number;
  /** Calls due in the minute. */
  readonly offered: number;
  readonly maxOutstanding: number;
}

/** Sent at the end of the soak. */
export interface SoakDone {
  readonly type: 'done';
  readonly maxSendLagMs: number;
}

export type SoakLoadReply = CapacityReply | MinuteMessage | SoakDone | { readonly type: 'error'; readonly message: string };

/** Slots of the mix, repeated: 4 GETs, 2 POSTs of 1 KB, 4 MCP tools/call of 1 KB in 10 calls. */
const MIX = ['get', 'mcp', 'post', 'get', 'mcp', 'get', 'mcp', 'post', 'get', 'mcp'] as const;
type Kind = (typeof MIX)[number];

const NOTE = JSON.stringify({ kind: 'note', text: 'x'.repeat(1024 - JSON.stringify({ kind: 'note', text: '' }).length) });
const MESSAGE = 'x'.repeat(892);

/** Counters of one period. */
class Period {
  ok = 0;
  restOk = 0;
  mcpOk = 0;
  errors = 0;
  readonly non2xx: Record<string, number> = {};
  sessionsOpened = 0;
  sessionsEnded = 0;
  readonly latency = new LatencySample();
  readonly mcpLatency = new LatencySample();
  /** Calls of this period not yet ended. */
  outstanding = 0;
  offered = 0;

  fail(what: string): void {
    this.non2xx[what] = (this.non2xx[what] ?? 0) + 1;
  }

  stats(): PeriodStats {
    const { ok, restOk, mcpOk, errors, non2xx, sessionsOpened, sessionsEnded } = this;
    return { ok, restOk, mcpOk, errors, non2xx, sessionsOpened, sessionsEnded, latency: this.latency.summary(), mcpLatency: this.mcpLatency.summary() };
  }
}

/** One live MCP session of the load. */
interface Session {
  readonly id: string;
  inFlight: number;
  ending: boolean;
}

/** The traffic: the mix of calls and the sessions they use. */
class Traffic {
  readonly pool: Pool;
  readonly #t: Target;
  readonly #live: Session[] = [];
  #next = 0;
  #rpcId = 0;
  #churn: NodeJS.Timeout | null = null;
  /** Where session opens and ends are counted. */
  period: Period = new Period();

  constructor(t: Target) {
    this.#t = t;
    this.pool = new Pool(t.origin, { connections: t.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  }

  /** A REST call's headers, or with `mcp` an MCP call's (in `session` once there is one). */
  #headers(mcp: boolean, session: string | null, json: boolean): Record<string, string> {
    return {
      authorization: `Bearer ${this.#t.agentKey}`,
      ...(json ? { 'content-type': 'application/json' } : {}),
      ...(mcp ? { accept: 'application/json, text/event-stream', 'mcp-protocol-version': this.#t.mcpVersion } : {}),
      ...(session ? { 'mcp-session-id': session } : {}),
    };
  }

  /** Opens a session and adds it to the live ones; failures are counted in the current period. */
  async open(): Promise<void> {
    const p = this.period;
    try {
      const init = {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: this.#t.mcpVersion, capabilities: {}, clientInfo: { name: 'portcullis-soak', version: '1.0.0' } },
      };
      const r = await this.pool.request({ path: this.#t.mcpPath, method: 'POST', headers: this.#headers(true, null, true), body: JSON.stringify(init) });
      await r.body.dump();
      const id = r.headers['mcp-session-id'];
      if (r.statusCode !== 200 || typeof id !== 'string') return p.fail(`initialize ${r.statusCode}`);
      const ready = await this.pool.request({
        path: this.#t.mcpPath,
        method: 'POST',
        headers: this.#headers(true, id, true),
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      });
      await ready.body.dump();
      if (ready.statusCode !== 202) return p.fail(`notifications/initialized ${ready.statusCode}`);
      this.#live.push({ id, inFlight: 0, ending: false });
      p.sessionsOpened++;
    } catch {
      p.errors++;
    }
  }

  /** Ends a session once its calls are answered. */
  async #end(s: Session): Promise<void> {
    const p = this.period;
    try {
      const r = await this.pool.request({ path: this.#t.mcpPath, method: 'DELETE', headers: this.#headers(true, s.id, false) });
      await r.body.dump();
      if (r.statusCode < 200 || r.statusCode >= 300) return p.fail(`DELETE ${r.statusCode}`);
      p.sessionsEnded++;
    } catch {
      p.errors++;
    }
  }

  /** Replaces the oldest live session by a new one, every sessionEveryMs. */
  startChurn(): void {
    this.#churn = setInterval(() => {
      void this.open().then(() => {
        if (this.#live.length <= this.#t.sessions) return;
        const oldest = this.#live.shift() as Session;
        oldest.ending = true;
        if (oldest.inFlight === 0) void this.#end(oldest);
      });
    }, this.#t.sessionEveryMs);
  }

  stopChurn(): void {
    if (this.#churn) clearInterval(this.#churn);
  }

  /** Ends every live session (at the end of a job). */
  async endAll(): Promise<void> {
    await Promise.all(this.#live.splice(0).map((s) => this.#end(s)));
  }

  /** Sends call number `i` of the mix; counts it in `period`, its latency from `startMs`. */
  async call(i: number, period: Period, startMs: number, measured = true): Promise<void> {
    const kind: Kind = MIX[i % MIX.length];
    let session: Session | null = null;
    if (kind === 'mcp') {
      session = this.#live[this.#next++ % this.#live.length] ?? null;
      if (!session) return void period.fail('no live MCP session');
      session.inFlight++;
    }
    try {
      const r = await this.pool.request(
        kind === 'get'
          ? { path: `${this.#t.restPath}?n=${i}`, method: 'GET', headers: this.#headers(false, null, false) }
          : kind === 'post'
            ? { path: this.#t.restPath, method: 'POST', headers: this.#headers(false, null, true), body: NOTE }
            : {
                path: this.#t.mcpPath,
                method: 'POST',
                headers: this.#headers(true, (session as Session).id, true),
                body: JSON.stringify({ jsonrpc: '2.0', id: ++this.#rpcId, method: 'tools/call', params: { name: 'echo', arguments: { message: MESSAGE } } }),
              },
      );
      if (kind === 'mcp') {
        const text = await r.body.text();
        const end = performance.now();
        if (r.statusCode !== 200) return period.fail(String(r.statusCode));
        // A deny is answered 200 too (a tool result marked isError): only the echo counts.
        if (!text.includes(MESSAGE) || text.includes('"isError":true')) return period.fail('mcp-not-echoed');
        if (!measured) return;
        period.ok++;
        period.mcpOk++;
        period.latency.add(end - startMs);
        period.mcpLatency.add(end - startMs);
        return;
      }
      await r.body.dump();
      const end = performance.now();
      if (r.statusCode < 200 || r.statusCode >= 300) return period.fail(String(r.statusCode));
      if (!measured) return;
      period.ok++;
      period.restOk++;
      period.latency.add(end - startMs);
    } catch {
      period.errors++;
    } finally {
      if (session && --session.inFlight === 0 && session.ending) void this.#end(session);
    }
  }

  async close(): Promise<void> {
    this.stopChurn();
    await this.endAll();
    await this.pool.close();
  }
}

async function startTraffic(t: Target): Promise<Traffic> {
  const traffic = new Traffic(t);
  for (let k = 0; k < t.sessions; k++) await traffic.open();
  traffic.startChurn();
  return traffic;
}

async function capacity(job: CapacityJob): Promise<CapacityReply> {
  const traffic = await startTraffic(job);
  const period = new Period();
  traffic.period = period;
  let i = 0;
  const start = performance.now();
  const stop = start + job.seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: job.workers }, async () => {
        while (performance.now() < stop) {
          const n = i++;
          await traffic.call(n, period, performance.now());
        }
      }),
    );
  } finally {
    await traffic.close();
  }
  const seconds = (performance.now() - start) / 1000;
  return { type: 'capacity', ...period.stats(), seconds, perSecond: period.ok / seconds };
}

async function soak(job: SoakJob, send: (m: SoakLoadReply) => void): Promise<void> {
  const traffic = await startTraffic(job);
  const periods: Period[] = Array.from({ length: job.minutes }, () => new Period());
  let reported = 0;
  let fired = 0;
  let outstanding = 0;
  let maxOutstanding = 0;
  const maxOut: number[] = periods.map(() => 0);
  const start = performance.now() + 1;
  // A minute is reported once it is over and every call due in it has ended.
  const report = () => {
    while (reported < job.minutes && performance.now() >= start + (reported + 1) * 60_000 && periods[reported].outstanding === 0) {
      const p = periods[reported];
      reported++;
      // Session opens and ends count in the minute in progress.
      if (reported < job.minutes) traffic.period = periods[reported];
      send({ type: 'minute', minute: reported, offered: p.offered, maxOutstanding: maxOut[reported - 1], ...p.stats() });
    }
  };
  traffic.period = periods[0];
  const reporter = setInterval(report, 100);
  try {
    const schedule = await runOpenLoop({
      ratePerSecond: job.ratePerSecond,
      warmupSeconds: 0,
      seconds: job.minutes * 60,
      fire(dueMs) {
        const m = Math.min(job.minutes - 1, Math.floor((dueMs - start) / 60_000));
        const p = periods[m];
        p.offered++;
        p.outstanding++;
        outstanding++;
        maxOutstanding = Math.max(maxOutstanding, outstanding);
        maxOut[m] = Math.max(maxOut[m], outstanding);
        void traffic.call(fired++, p, dueMs).finally(() => {
          p.outstanding--;
          outstanding--;
        });
      },
    });
    traffic.stopChurn();
    while (reported < job.minutes) await new Promise((r) => setTimeout(r, 50));
    send({ type: 'done', maxSendLagMs: schedule.maxSendLagMs });
  } finally {
    clearInterval(reporter);
    await traffic.close();
  }
}

if (require.main === module) {
  const send = (m: SoakLoadReply) => process.send?.(m);
  process.on('message', (m: CapacityJob | SoakJob) => {
    const failed = (err: Error) => send({ type: 'error', message: err.message });
    if (m?.type === 'capacity') capacity(m).then(send, failed);
    else if (m?.type === 'soak') soak(m, send).catch(failed);
  });
  serveChild('', async () => undefined);
}

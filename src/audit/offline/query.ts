/**
 * Audit queries: the filter model behind `portcullis audit query` and `audit export`, and the
 * streaming scan that applies it. A filter is compiled once into (a) substring needles, a cheap
 * prefilter on the raw line that exact-value filters allow (an agent named `bot` can only appear
 * in a line containing `"agent":"bot"`), and (b) a precise predicate on the parsed record.
 * Records are emitted in trail order; the optional outcome join keeps that order by holding
 * matched decisions in a bounded queue until their outcome record (written shortly after) is seen.
 */
import { readTrail, type TrailLine } from './trail-reader';

/** What to select. Every field is optional; all given fields must match. */
export interface AuditFilter {
  /** Epoch ms, inclusive. */
  readonly since?: number;
  /** Epoch ms, exclusive. */
  readonly until?: number;
  /** Record types to keep; 'all' keeps every type. Default: decision (decision and outcome with decisionId). */
  readonly types?: readonly string[] | 'all';
  readonly agents?: readonly string[];
  readonly routes?: readonly string[];
  /** MCP tool names (`mcp.tool` of decision records). */
  readonly tools?: readonly string[];
  readonly decision?: 'allow' | 'deny';
  /** Case-insensitive substring of a reason or of the error code. */
  readonly reason?: string;
  /** Exact error codes (`code` of deny records). */
  readonly codes?: readonly string[];
  /** Whom the agent acted for (`on_behalf_of`). */
  readonly onBehalfOf?: readonly string[];
  readonly decisionId?: string;
}

/** A usage problem in a filter or option (bad time, unknown value). The CLI exits 2. */
export class QueryOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueryOptionError';
  }
}

/** A parsed record (any type; unknown fields kept). */
export type AuditRecord = Record<string, unknown> & { readonly seq?: number; readonly type?: string; readonly time?: string };

/** The outcome fields joined to a decision. */
export interface JoinedOutcome {
  readonly status: number;
  readonly latency_ms: number;
  readonly code?: string;
  readonly seq: number;
}

/** One record selected by a query, with where it came from. */
export interface QueryHit {
  readonly record: AuditRecord;
  readonly source: TrailLine;
  /** The decision's outcome (only when the query joins outcomes and one was found). */
  outcome?: JoinedOutcome;
  /** The latest record of a `contextTypes` type before this one (e.g. the gateway_start). */
  readonly context?: AuditRecord;
}

/** Counters of a scan. */
export interface QueryStats {
  /** Lines parsed (after the prefilter). */
  parsed: number;
  /** Records emitted. */
  emitted: number;
  /** Lines that were not JSON objects (a damaged trail: run `audit verify`). */
  unreadable: number;
}

/** Options of runQuery. */
export interface QueryOptions {
  /** Stop after this many records. */
  readonly limit?: number;
  /** Attach each decision's outcome (status, latency). */
  readonly withOutcome?: boolean;
  /** Record types tracked as context for later hits (e.g. gateway_start), whatever the filter. */
  readonly contextTypes?: readonly string[];
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A time bound: an ISO 8601 date or date-time (`2026-05-01`, `2026-05-01T12:00:00Z`), or a span
 * before `now` (`90s`, `15m`, `24h`, `7d`, `2w`).
 */
export function parseTimeBound(value: string, now: number = Date.now()): number {
  const rel = /^(\d+)([smhdw])$/.exec(value);
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]];
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return t;
  }
  throw new QueryOptionError(`"${value}" is not a time: use an ISO 8601 date or time (2026-05-01, 2026-05-01T12:00:00Z) or a span before now (30m, 24h, 7d)`);
}

/** A JSON string as the writer puts it on a line (record.ts also escapes U+2028/U+2029). */
function jsonString(value: string): string {
  return JSON.stringify(value).replace(/[\u2028\u2029]/g, (c) => (c === '\u2028' ? '\\u2028' : '\\u2029'));
}

/** A filter compiled for scanning. */
export interface CompiledFilter {
  /** Lines must contain one of these (empty: no prefilter). */
  readonly needles: readonly string[];
  /** The precise test on a parsed record. */
  matches(record: AuditRecord): boolean;
  /** True when the type filter admits decisions (the outcome join applies). */
  readonly wantsDecisions: boolean;
}

/** Compiles a filter. */
export function compileFilter(filter: AuditFilter): CompiledFilter {
  const types = filter.types === 'all' ? null : new Set(filter.types ?? (filter.decisionId !== undefined ? ['decision', 'outcome'] : ['decision']));
  const set = (values?: readonly string[]) => (values?.length ? new Set(values) : null);
  const agents = set(filter.agents);
  const routes = set(filter.routes);
  const tools = set(filter.tools);
  const codes = set(filter.codes);
  const onBehalfOf = set(filter.onBehalfOf);
  const reason = filter.reason?.toLowerCase();
  const { since, until, decision, decisionId } = filter;

  // The most selective exact-value filter gives the needles (they are OR-ed, so one field only).
  let needles: string[] = [];
  if (decisionId !== undefined) needles = [`"decision_id":${jsonString(decisionId)}`];
  else if (agents) needles = [...agents].map((a) => `"agent":${jsonString(a)}`);
  else if (tools) needles = [...tools].map((t) => `"tool":${jsonString(t)}`);
  else if (routes) needles = [...routes].map((r) => `"route":${jsonString(r)}`);
  else if (decision) needles = [`"decision":"${decision}"`];
  else if (types) needles = [...types].map((t) => `"type":${jsonString(t)}`);

  return {
    needles,
    wantsDecisions: types === null || types.has('decision'),
    matches(r: AuditRecord): boolean {
      if (types && !types.has(String(r.type))) return false;
      if (since !== undefined || until !== undefined) {
        const t = typeof r.time === 'string' ? Date.parse(r.time) : NaN;
        if (Number.isNaN(t) || (since !== undefined && t < since) || (until !== undefined && t >= until)) return false;
      }
      if (decisionId !== undefined && r.decision_id !== decisionId) return false;
      if (agents && !agents.has(r.agent as string)) return false;
      if (routes && !routes.has(r.route as string)) return false;
      if (decision && r.decision !== decision) return false;
      if (codes && !codes.has(r.code as string)) return false;
      if (onBehalfOf && !onBehalfOf.has(r.on_behalf_of as string)) return false;
      if (tools) {
        const mcp = r.mcp as { tool?: unknown } | undefined;
        if (!mcp || typeof mcp.tool !== 'string' || !tools.has(mcp.tool)) return false;
      }
      if (reason !== undefined) {
        const reasons = Array.isArray(r.reasons) ? r.reasons : [];
        const hit =
          reasons.some((x) => typeof x === 'string' && x.toLowerCase().includes(reason)) ||
          (typeof r.code === 'string' && r.code.toLowerCase().includes(reason));
        if (!hit) return false;
      }
      return true;
    },
  };
}

/** Most decisions held back waiting for their outcome before they are emitted without it. */
export const OUTCOME_WAIT_LIMIT = 10_000;

const DECISION_ID = '"decision_id":"';

/**
 * Scans a trail and calls `emit` for each matching record, in trail order. Synchronous: the
 * CLI has nothing else to do meanwhile, and it keeps the hot loop free of promise overhead.
 */
export function runQuery(target: string, filter: AuditFilter, options: QueryOptions, emit: (hit: QueryHit) => void): QueryStats {
  const compiled = compileFilter(filter);
  const join = options.withOutcome === true && compiled.wantsDecisions;
  const contextTypes = options.contextTypes ?? [];
  const needles = compiled.needles.length
    ? [...compiled.needles, ...(join ? ['"type":"outcome"'] : []), ...contextTypes.map((t) => `"type":${jsonString(t)}`)]
    : [];
  const limit = options.limit ?? Infinity;
  const stats: QueryStats = { parsed: 0, emitted: 0, unreadable: 0 };

  // Outcome join: matched hits wait here, in order, until their outcome arrives.
  const queue: { hit: QueryHit; waiting: boolean }[] = [];
  const waiting = new Map<string, { hit: QueryHit; waiting: boolean }>();
  const flush = (force: boolean) => {
    while (queue.length && stats.emitted < limit && (force || !queue[0].waiting || queue.length > OUTCOME_WAIT_LIMIT)) {
      const head = queue.shift()!;
      if (head.waiting) waiting.delete(head.hit.record.decision_id as string);
      stats.emitted++;
      emit(head.hit);
    }
  };

  let context: AuditRecord | undefined;
  if (limit <= 0) return stats;
  // Lines that passed the prefilter only as possible outcomes are not candidates themselves.
  const candidateNeedles = needles.length ? [...compiled.needles, ...contextTypes.map((t) => `"type":${jsonString(t)}`)] : null;
  for (const source of readTrail(target, { anyOf: needles })) {
    const text = source.text;
    let record: AuditRecord | null | undefined;
    if (join && waiting.size > 0 && text.includes('"type":"outcome"')) {
      // Parse an outcome only when a held decision waits for it.
      const at = text.indexOf(DECISION_ID);
      const id = at === -1 ? '' : text.slice(at + DECISION_ID.length, text.indexOf('"', at + DECISION_ID.length));
      const slot = waiting.get(id);
      if (slot) {
        record = parse(text, stats);
        if (record && record.type === 'outcome' && record.decision_id === id) {
          slot.hit.outcome = {
            ...(typeof record.code === 'string' ? { code: record.code } : {}),
            latency_ms: record.latency_ms as number,
            seq: record.seq as number,
            status: record.status as number,
          };
          slot.waiting = false;
          waiting.delete(id);
          flush(false);
          if (stats.emitted >= limit) break;
        }
      }
    }
    if (record === undefined) {
      if (join && candidateNeedles && !candidateNeedles.some((n) => text.includes(n))) continue;
      record = parse(text, stats);
    }
    if (!record) continue;
    if (contextTypes.includes(record.type as string)) context = record;
    if (!compiled.matches(record)) continue;
    const hit: QueryHit = context ? { record, source, context } : { record, source };
    if (join && record.type === 'decision' && record.decision === 'allow' && typeof record.decision_id === 'string') {
      const slot = { hit, waiting: true };
      queue.push(slot);
      waiting.set(record.decision_id, slot);
    } else queue.push({ hit, waiting: false });
    flush(false);
    if (stats.emitted >= limit) break;
  }
  flush(true);
  return stats;
}

function parse(text: string, stats: QueryStats): AuditRecord | null {
  stats.parsed++;
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as AuditRecord;
  } catch {
    /* counted below */
  }
  stats.unreadable++;
  return null;
}

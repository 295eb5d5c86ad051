/**
 * What the auditor's view knows of a trail, built once when it opens (`portcullis audit
 * serve`): the verdict of the same verifier `audit verify` runs (verify.ts), and one pass over
 * the records for the summaries every page needs (denies by reason and by tool, credentials,
 * policy revisions, checkpoints). A page of the timeline is a query (query.ts, with its raw-line
 * prefilter) that stops once the page is full: the first pages cost little whatever the trail's
 * size, a deep page costs a scan up to it. Memory is bounded: counts by distinct value (capped
 * at SUMMARY_CAP) and one entry per checkpoint. Nothing is written into or beside the trail.
 */
import { runQuery, type AuditFilter, type AuditRecord, type QueryHit } from '../offline/query';
import { verifyTrail, type VerifyReport } from '../offline/verify';

/** Distinct values kept per summary; the rest are counted under OTHER. */
export const SUMMARY_CAP = 200;
export const OTHER = '(others)';

/** Counts by value, most frequent first. */
export type Counts = ReadonlyArray<readonly [string, number]>;

/** A policy revision: when it was first and last seen deciding, and how many decisions it made. */
export interface RevisionSummary {
  readonly revision: string;
  readonly loadedAt: string | null;
  readonly firstDecision: string | null;
  readonly lastDecision: string | null;
  readonly decisions: number;
}

/** The summaries of a trail. */
export interface TrailSummary {
  readonly records: number;
  readonly decisions: number;
  readonly allowed: number;
  readonly denied: number;
  readonly firstTime: string | null;
  readonly lastTime: string | null;
  readonly deniesByReason: Counts;
  readonly deniesByTool: Counts;
  readonly deniesByCode: Counts;
  /** Allowed calls by credential name and scopes. */
  readonly credentials: Counts;
  readonly revisions: readonly RevisionSummary[];
  /** Checkpoints: seq of the checkpoint record and the size (records) it covers, in order. */
  readonly checkpoints: ReadonlyArray<{ readonly seq: number; readonly size: number; readonly time: string | null }>;
}

/** An opened trail. */
export interface TrailView {
  readonly dir: string;
  readonly report: VerifyReport;
  readonly summary: TrailSummary;
}

class Counter {
  private readonly m = new Map<string, number>();
  add(key: string): void {
    if (this.m.has(key) || this.m.size < SUMMARY_CAP) this.m.set(key, (this.m.get(key) ?? 0) + 1);
    else this.m.set(OTHER, (this.m.get(OTHER) ?? 0) + 1);
  }
  sorted(): Counts {
    return [...this.m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Where opening a trail is. */
export interface OpenProgress {
  readonly phase: 'verifying' | 'summarising';
  /** Segments started, of total (verifying); records read (summarising). */
  readonly done: number;
  readonly total: number;
  readonly records: number;
}

/** Verifies the trail with the given keys, then summarises it in one pass. */
export function openTrailView(dir: string, keys: readonly string[], onProgress?: (p: OpenProgress) => void, live = false): TrailView {
  const report = verifyTrail(dir, { ...(keys.length ? { keys } : {}), live, onProgress: (p) => onProgress?.({ phase: 'verifying', ...p }) });
  onProgress?.({ phase: 'summarising', done: 0, total: report.records, records: 0 });
  return { dir, report, summary: summarise(dir, (n) => onProgress?.({ phase: 'summarising', done: n, total: report.records, records: n })) };
}

function summarise(dir: string, progress: (records: number) => void): TrailSummary {
  let records = 0;
  let decisions = 0;
  let allowed = 0;
  let firstTime: string | null = null;
  let lastTime: string | null = null;
  const byReason = new Counter();
  const byTool = new Counter();
  const byCode = new Counter();
  const credentials = new Counter();
  const revisions = new Map<string, { loadedAt: string | null; first: string | null; last: string | null; decisions: number }>();
  const checkpoints: { seq: number; size: number; time: string | null }[] = [];
  const revision = (r: string) => {
    let s = revisions.get(r);
    if (!s) {
      if (revisions.size >= SUMMARY_CAP) return null;
      s = { loadedAt: null, first: null, last: null, decisions: 0 };
      revisions.set(r, s);
    }
    return s;
  };
  runQuery(dir, { types: 'all' }, {}, ({ record: r }) => {
    if (++records % 50_000 === 0) progress(records);
    const time = str(r.time);
    if (time) {
      firstTime ??= time;
      lastTime = time;
    }
    if (r.type === 'checkpoint' && typeof r.seq === 'number' && typeof r.size === 'number') checkpoints.push({ seq: r.seq, size: r.size, time });
    if (r.type === 'policy_loaded' && r.shadow !== true && typeof r.revision === 'string') {
      const s = revision(r.revision);
      if (s) s.loadedAt ??= time;
    }
    if (r.type !== 'decision') return;
    decisions++;
    const rev = str(r.policy_revision);
    if (rev) {
      const s = revision(rev);
      if (s) {
        s.decisions++;
        s.first ??= time;
        s.last = time;
      }
    }
    if (r.decision === 'allow') {
      allowed++;
      const c = str(r.credential);
      if (c) credentials.add(Array.isArray(r.credential_scopes) ? `${c} [${r.credential_scopes.join(' ')}]` : c);
      return;
    }
    byCode.add(str(r.code) ?? '(none)');
    for (const reason of Array.isArray(r.reasons) && r.reasons.length ? r.reasons : ['(none)']) byReason.add(String(reason));
    const tool = (r.mcp as { tool?: unknown } | undefined)?.tool;
    byTool.add(typeof tool === 'string' ? tool : '(not a tool call)');
  });
  return {
    records,
    decisions,
    allowed,
    denied: decisions - allowed,
    firstTime,
    lastTime,
    deniesByReason: byReason.sorted(),
    deniesByTool: byTool.sorted(),
    deniesByCode: byCode.sorted(),
    credentials: credentials.sorted(),
    revisions: [...revisions.entries()].map(([r, s]) => ({
      revision: r,
      loadedAt: s.loadedAt,
      firstDecision: s.first,
      lastDecision: s.last,
      decisions: s.decisions,
    })),
    checkpoints,
  };
}

/** One page of decisions matching a filter: `pageSize` hits after skipping `offset`, and whether more follow. */
export function timelinePage(view: TrailView, filter: AuditFilter, offset: number, pageSize: number): { hits: QueryHit[]; more: boolean } {
  const hits: QueryHit[] = [];
  let seen = 0;
  runQuery(view.dir, { ...filter, types: ['decision'] }, { limit: offset + pageSize + 1, withOutcome: true }, (hit) => {
    if (seen++ >= offset) hits.push(hit);
  });
  const more = hits.length > pageSize;
  return { hits: hits.slice(0, pageSize), more };
}

/** A decision record by id, with its position, and the first checkpoint that covers it. */
export function decisionDetail(
  view: TrailView,
  id: string,
): { record: AuditRecord; file: string; line: number; checkpoint: { seq: number; size: number; time: string | null } | null } | null {
  let found: QueryHit | null = null;
  runQuery(view.dir, { decisionId: id, types: ['decision'] }, { limit: 1 }, (hit) => {
    found = hit;
  });
  if (found === null) return null;
  const hit = found as QueryHit;
  const seq = typeof hit.record.seq === 'number' ? hit.record.seq : Infinity;
  const checkpoint = view.summary.checkpoints.find((c) => c.size >= seq) ?? null;
  return { record: hit.record, file: hit.source.file, line: hit.source.line, checkpoint };
}

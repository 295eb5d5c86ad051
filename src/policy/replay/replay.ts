/**
 * `portcullis policy replay`: a candidate policy judged on the recorded decisions of a trail.
 * Each decision record that carries `input` (the call reached the policy) is rebuilt into the
 * policy input it was (rebuildInput), the candidate decides it, and its verdict is compared with
 * the recorded one (recordedVerdict). A record the candidate might decide on something that was
 * not recorded is undeterminable (input-refs.ts), never guessed, and never counted as a flip.
 * Reads the files only (the trail reader's prefilter and `audit query`'s filters); never the
 * request path.
 */
import { statSync } from 'node:fs';
import { type AuditFilter, type AuditRecord, runQuery } from '../../audit/offline/query';
import { trailFiles } from '../../audit/offline/trail-reader';
import type { PolicyInput } from '../engine';
import type { Candidate } from './candidate';
import { firstOverlap, formatInputPath, projectInput } from './input-refs';

/** Error codes under which the recorded policy itself denied (or failed to decide) the call. */
export const POLICY_DENY_CODES: readonly string[] = ['PC_POLICY_DENIED', 'PC_POLICY_ERROR'];

/** What happened to one record. */
export type ReplayOutcome = 'unchanged' | 'newly_denied' | 'newly_allowed' | 'undeterminable';

/** A flip or an undeterminable record, as it is grouped. */
export interface ReplayItem {
  readonly outcome: Exclude<ReplayOutcome, 'unchanged'>;
  readonly decisionId: string;
  readonly route: string;
  readonly agent: string;
  readonly tool: string;
  /** Newly denied: the candidate's reasons; newly allowed: the recorded ones; undeterminable: why. */
  readonly reasons: readonly string[];
}

/** Counters of a replay (docs/cli.md, `policy replay`). */
export interface ReplayTotals {
  /** Decision records that matched the filters. */
  records: number;
  /** Those that carry `input`: the recorded policy judged them. */
  judged: number;
  unchanged: number;
  newly_denied: number;
  newly_allowed: number;
  undeterminable: number;
  /** Those without `input`: refused before the policy ran, not judged by a policy. */
  skipped: number;
}

/** Progress of a replay, for a terminal. */
export interface ReplayProgress {
  readonly records: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly elapsedMs: number;
}

/** Options of runReplay. */
export interface ReplayOptions {
  /** Called with each flip and undeterminable record. */
  readonly onItem: (item: ReplayItem) => void;
  /** Called now and then (every ~250 ms) while the trail is read. */
  readonly onProgress?: (p: ReplayProgress) => void;
}

/** The result of runReplay. */
export interface ReplayResult {
  readonly totals: ReplayTotals;
  /** Lines that were not JSON records. */
  readonly unreadable: number;
}

/**
 * The verdict the recorded policy gave: deny iff the record's code is PC_POLICY_DENIED or
 * PC_POLICY_ERROR. Any other code on a record that carries `input` was given after the policy
 * allowed the call (the audit write or the credential failed), and a dry-run record
 * (`enforced: false`) keeps the policy's verdict in its code the same way.
 */
export function recordedVerdict(record: AuditRecord): 'allow' | 'deny' {
  return typeof record.code === 'string' && POLICY_DENY_CODES.includes(record.code) ? 'deny' : 'allow';
}

/**
 * The policy input of a record, rebuilt: `input` as recorded, and on an MCP call
 * `input.mcp.arguments` from the record's `mcp.arguments` (not repeated in `input`,
 * src/audit/recorded-input.ts); a call without them had null, unless `input_omitted` lists
 * `/mcp/arguments` (then they were there, and were not kept). Changes the parsed record.
 */
export function rebuildInput(record: AuditRecord): { input: PolicyInput; omitted: readonly string[] } {
  const input = record.input as Record<string, unknown>;
  // A pointer that is not a string is taken as the whole input ('' in RFC 6901): never trusted as nothing.
  const omitted = Array.isArray(record.input_omitted) ? (record.input_omitted as unknown[]).map((p) => (typeof p === 'string' ? p : '')) : [];
  const mcp = input.mcp;
  if (mcp !== null && typeof mcp === 'object' && !Array.isArray(mcp)) {
    const view = record.mcp as { arguments?: unknown } | undefined;
    if (view?.arguments !== undefined) (mcp as Record<string, unknown>).arguments = view.arguments;
    else if (!omitted.includes('/mcp/arguments')) (mcp as Record<string, unknown>).arguments = null;
  }
  return { input: input as PolicyInput, omitted };
}

/** Why the candidate cannot be trusted on this record, or null when it can. */
function undeterminable(candidate: Pick<Candidate, 'reads' | 'nondeterministic'>, omitted: readonly string[]): string | null {
  if (candidate.nondeterministic.length) return `the candidate calls ${candidate.nondeterministic.join(', ')}, which is not a function of the input`;
  if (omitted.length === 0) return null;
  if (candidate.reads === null) return `the candidate's Rego sources are not known (a Wasm bundle) and the record omits ${omitted.join(', ')}`;
  const hit = firstOverlap(candidate.reads.paths, omitted);
  return hit && `the candidate reads ${formatInputPath(hit.read)}; the record omits ${hit.omitted}`;
}

const PROGRESS_EVERY = 2048;
/** Distinct omission lists whose answer is kept (a trail has a handful; a bound all the same). */
const VERDICT_CACHE_MAX = 4096;
const PROGRESS_MS = 250;

/** A fresh set of counters. */
export function zeroTotals(): ReplayTotals {
  return { records: 0, judged: 0, unchanged: 0, newly_denied: 0, newly_allowed: 0, undeterminable: 0, skipped: 0 };
}

/** The candidate judging one record at a time; counts into `totals`, returns the flip or undeterminable item, or null. */
export class RecordJudge {
  private readonly verdicts = new Map<string, string | null>();

  constructor(
    private readonly candidate: Pick<Candidate, 'engine' | 'reads' | 'nondeterministic'>,
    readonly totals: ReplayTotals,
  ) {}

  /** Judges a decision record that matched the filter. */
  judge(record: AuditRecord): ReplayItem | null {
    const totals = this.totals;
    totals.records++;
    const raw = record.input;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      totals.skipped++;
      return null;
    }
    totals.judged++;
    const id = String(record.decision_id);
    const route = typeof record.route === 'string' ? record.route : '-';
    const agent = typeof record.agent === 'string' ? record.agent : '-';
    const tool = typeof (record.mcp as { tool?: unknown } | undefined)?.tool === 'string' ? (record.mcp as { tool: string }).tool : '-';
    const { input, omitted } = rebuildInput(record);
    // Records repeat a few omission lists: the answer for each is worked out once.
    const key = omitted.join('\n');
    let why = this.verdicts.get(key);
    if (why === undefined) {
      why = undeterminable(this.candidate, omitted);
      if (this.verdicts.size < VERDICT_CACHE_MAX) this.verdicts.set(key, why);
    }
    if (why !== null) {
      totals.undeterminable++;
      return { outcome: 'undeterminable', decisionId: id, route, agent, tool, reasons: [why] };
    }
    const was = recordedVerdict(record);
    const reads = this.candidate.reads;
    const decision = this.candidate.engine.decide(reads === null ? input : (projectInput(input, reads.paths) as PolicyInput));
    const now = decision.allow && decision.error === undefined ? 'allow' : 'deny';
    if (was === now) {
      totals.unchanged++;
      return null;
    }
    const reasons = now === 'deny' ? decision.reasons : Array.isArray(record.reasons) ? (record.reasons as string[]) : [];
    const outcome = now === 'deny' ? 'newly_denied' : 'newly_allowed';
    totals[outcome]++;
    return { outcome, decisionId: id, route, agent, tool, reasons };
  }
}

/** Where each segment starts in the trail's bytes, and their total (for progress). */
function trailOffsets(target: string): { startOf: Map<string, number>; bytesTotal: number } {
  const startOf = new Map<string, number>();
  let bytesTotal = 0;
  for (const f of trailFiles(target)) {
    startOf.set(f, bytesTotal);
    bytesTotal += statSync(f).size;
  }
  return { startOf, bytesTotal };
}

/** Replays the decision records of `target` that match `filter` with the candidate, in this thread. */
export function runReplay(target: string, filter: Omit<AuditFilter, 'types'>, candidate: Candidate, options: ReplayOptions): ReplayResult {
  const totals = zeroTotals();
  const judge = new RecordJudge(candidate, totals);
  const { onItem, onProgress } = options;
  const started = Date.now();
  const { startOf, bytesTotal } = trailOffsets(target);
  let lastProgress = started;
  const stats = runQuery(target, { ...filter, types: ['decision'] }, {}, ({ record, source }) => {
    if (onProgress && (totals.records + 1) % PROGRESS_EVERY === 0) {
      const now = Date.now();
      if (now - lastProgress >= PROGRESS_MS) {
        lastProgress = now;
        onProgress({ records: totals.records, bytesDone: (startOf.get(source.file) ?? 0) + source.read, bytesTotal, elapsedMs: now - started });
      }
    }
    const item = judge.judge(record);
    if (item) onItem(item);
  });
  onProgress?.({ records: totals.records, bytesDone: bytesTotal, bytesTotal, elapsedMs: Date.now() - started });
  return { totals, unreadable: stats.unreadable };
}

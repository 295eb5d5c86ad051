/**
 * `portcullis policy replay`: a candidate policy judged on the recorded decisions of a trail.
 * Each decision record that carries `input` (the call reached the policy) is rebuilt into the
 * policy input it was (rebuildInput), the candidate decides it, and its verdict is compared with
 * the recorded one (recordedVerdict). A record the candidate might decide on something that was
 * not recorded is undeterminable (input-refs.ts), never guessed, and never counted as a flip.
 * Reads the files only (the trail reader's prefilter and `audit query`'s filters); never the
 * request path.
 */
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { type AuditFilter, type AuditRecord, compileFilter, runQuery } from '../../audit/offline/query';
import { readTrail, trailFiles } from '../../audit/offline/trail-reader';
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
  const omitted = Array.isArray(record.input_omitted) ? (record.input_omitted as string[]) : [];
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
    /** Where it counts (a worker swaps in fresh counters per batch). */
    public totals: ReplayTotals,
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

/** Lines sent to a worker at once. */
const BATCH_LINES = 1024;
/** Batches a worker may hold before the reader waits. */
const IN_FLIGHT_PER_WORKER = 4;

/** What the main thread sends a worker first. */
export interface WorkerSetup {
  readonly wasm: Uint8Array;
  readonly data: unknown;
  readonly revision: string;
  readonly entrypoint: string;
  readonly reads: Candidate['reads'];
  readonly nondeterministic: readonly string[];
  readonly filter: AuditFilter;
}

/** A worker's answer to one batch of lines. */
export interface WorkerReply {
  readonly seq: number;
  readonly totals: ReplayTotals;
  readonly items: readonly ReplayItem[];
  readonly unreadable: number;
}

/** Trails smaller than this are replayed in one thread: starting workers would cost more than they save. */
const PARALLEL_FROM_BYTES = 16 * 1024 * 1024;

/** Threads for a trail: one per CPU, at most 4, when it is large enough to pay for them; else 1. */
export function defaultThreads(target: string): number {
  return trailOffsets(target).bytesTotal < PARALLEL_FROM_BYTES ? 1 : Math.min(4, availableParallelism());
}

/** The worker thread's script (replay-worker.js beside this file), or null when not built (ts-jest). */
export function workerScript(): string | null {
  const file = path.join(__dirname, 'replay-worker.js');
  return existsSync(file) ? file : null;
}

/**
 * Replays with `threads` worker threads, each with its own engine: this thread reads the trail
 * and applies the raw-line prefilter, the workers parse, filter and judge. Items are reported in
 * trail order (batches are taken back in the order they were sent), so the examples are those
 * the one-thread replay gives. Falls back to runReplay when the worker script is not built.
 */
export async function runReplayParallel(
  target: string,
  filter: Omit<AuditFilter, 'types'>,
  candidate: Candidate,
  options: ReplayOptions & { readonly threads: number },
): Promise<ReplayResult> {
  const script = workerScript();
  if (script === null || options.threads <= 1) return runReplay(target, filter, candidate, options);
  const full: AuditFilter = { ...filter, types: ['decision'] };
  const setup: WorkerSetup = {
    wasm: new Uint8Array(candidate.compiled.wasm),
    data: candidate.compiled.data,
    revision: candidate.revision,
    entrypoint: candidate.entrypoint,
    reads: candidate.reads,
    nondeterministic: candidate.nondeterministic,
    filter: full,
  };
  const workers = Array.from({ length: options.threads }, () => new Worker(script, { workerData: setup }));
  const totals = zeroTotals();
  let unreadable = 0;
  const { onItem, onProgress } = options;
  const started = Date.now();
  const { startOf, bytesTotal } = trailOffsets(target);
  let lastProgress = started;
  // Replies kept until every batch before them is in: items go out in trail order.
  const early = new Map<number, WorkerReply>();
  let nextToEmit = 0;
  let sent = 0;
  const inFlight = workers.map(() => 0);
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  const take = (reply: WorkerReply) => {
    early.set(reply.seq, reply);
    for (let r = early.get(nextToEmit); r !== undefined; r = early.get(nextToEmit)) {
      early.delete(nextToEmit++);
      for (const k of Object.keys(totals) as (keyof ReplayTotals)[]) totals[k] += r.totals[k];
      unreadable += r.unreadable;
      for (const item of r.items) onItem(item);
    }
  };
  workers.forEach((w, i) => {
    w.on('message', (reply: WorkerReply) => {
      inFlight[i]--;
      take(reply);
      wake?.();
    });
    w.on('error', (err) => {
      failure = err;
      wake?.();
    });
  });
  const waitForRoom = async (): Promise<number> => {
    for (;;) {
      if (failure) throw failure;
      let best = 0;
      for (let i = 1; i < workers.length; i++) if (inFlight[i] < inFlight[best]) best = i;
      if (inFlight[best] < IN_FLIGHT_PER_WORKER) return best;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
    }
  };
  try {
    let batch: string[] = [];
    const send = async () => {
      const i = await waitForRoom();
      inFlight[i]++;
      workers[i].postMessage({ seq: sent++, lines: batch });
      batch = [];
    };
    for (const line of readTrail(target, { anyOf: compileFilter(full).needles })) {
      batch.push(line.text);
      if (batch.length === BATCH_LINES) {
        await send();
        if (onProgress) {
          const now = Date.now();
          if (now - lastProgress >= PROGRESS_MS) {
            lastProgress = now;
            onProgress({ records: totals.records, bytesDone: (startOf.get(line.file) ?? 0) + line.read, bytesTotal, elapsedMs: now - started });
          }
        }
      }
    }
    if (batch.length) await send();
    while (nextToEmit < sent) {
      if (failure) throw failure;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  onProgress?.({ records: totals.records, bytesDone: bytesTotal, bytesTotal, elapsedMs: Date.now() - started });
  return { totals, unreadable };
}

/**
 * The report of a replay: flips grouped by route, agent, tool and reasons, undeterminable
 * records grouped by route and why, each group with its count and a few example decision ids,
 * largest first; printed as text or as one JSON document whose field names are stable
 * (docs/cli.md, `policy replay`).
 */
import type { Candidate } from './candidate';
import { formatInputPath } from './input-refs';
import type { ReplayItem, ReplayResult, ReplayTotals } from './replay';

/** One group of flips (or of undeterminable records: then agent and tool are absent). */
export interface ReplayGroup {
  readonly route: string;
  readonly agent?: string;
  readonly tool?: string;
  readonly reasons: readonly string[];
  count: number;
  readonly examples: string[];
}

/** What `--fail-on` may name. */
export const FAIL_ON = ['newly-allowed', 'newly-denied', 'undeterminable', 'any'] as const;
export type FailOn = (typeof FAIL_ON)[number];

/** The JSON document of `policy replay --format json`. */
export interface ReplayReport {
  readonly candidate: {
    readonly path: string;
    readonly entrypoint: string;
    readonly revision: string;
    readonly sources: 'rego' | 'wasm';
    /** The input paths it reads (`input.request.method`); null when its sources are not known. */
    readonly reads: readonly string[] | null;
    readonly nondeterministic: readonly string[];
  };
  readonly trail: string;
  readonly totals: ReplayTotals;
  readonly newly_denied: readonly ReplayGroup[];
  readonly newly_allowed: readonly ReplayGroup[];
  readonly undeterminable: readonly ReplayGroup[];
  /** Lines of the trail that were not JSON records (run `audit verify`). */
  readonly unreadable: number;
  readonly notes: readonly string[];
  readonly fail_on: readonly FailOn[];
  /** True when something `fail_on` names happened (the exit code is then 1). */
  readonly failed: boolean;
}

/** Collects items into groups as they come. */
export class ReplayGroups {
  private readonly groups = {
    newly_denied: new Map<string, ReplayGroup>(),
    newly_allowed: new Map<string, ReplayGroup>(),
    undeterminable: new Map<string, ReplayGroup>(),
  };

  constructor(private readonly examples: number) {}

  /** Adds one item (the onItem of runReplay). */
  add(item: ReplayItem): void {
    const flip = item.outcome !== 'undeterminable';
    const key = JSON.stringify(flip ? [item.route, item.agent, item.tool, item.reasons] : [item.route, item.reasons]);
    const map = this.groups[item.outcome];
    let g = map.get(key);
    if (!g) {
      g = flip
        ? { route: item.route, agent: item.agent, tool: item.tool, reasons: item.reasons, count: 0, examples: [] }
        : { route: item.route, reasons: item.reasons, count: 0, examples: [] };
      map.set(key, g);
    }
    g.count++;
    if (g.examples.length < this.examples) g.examples.push(item.decisionId);
  }

  /** The groups of one kind, largest first (then by route, agent, tool, reasons). */
  sorted(kind: keyof ReplayGroups['groups']): ReplayGroup[] {
    const key = (g: ReplayGroup) => JSON.stringify([g.route, g.agent ?? '', g.tool ?? '', g.reasons]);
    return [...this.groups[kind].values()].sort((a, b) => b.count - a.count || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  }
}

/** Builds the report document. */
export function buildReport(args: {
  readonly candidatePath: string;
  readonly entrypoint: string;
  readonly candidate: Candidate;
  readonly trail: string;
  readonly result: ReplayResult;
  readonly groups: ReplayGroups;
  readonly failOn: readonly FailOn[];
}): ReplayReport {
  const { candidate, result } = args;
  const t = result.totals;
  const notes: string[] = [];
  if (candidate.nondeterministic.length)
    notes.push(`the candidate calls ${candidate.nondeterministic.join(', ')}: its decisions depend on more than the input, so no record can be recomputed`);
  if (candidate.sources === 'wasm')
    notes.push(
      'the candidate is a Wasm bundle: its Rego sources are not in it, so what it reads is not known; every record that omits part of its input is undeterminable (replay the policy directory to know more)',
    );
  if (t.skipped) notes.push(`${t.skipped} record(s) were refused before any policy ran (no input recorded): not judged by a policy, skipped`);
  const happened: Record<Exclude<FailOn, 'any'>, boolean> = {
    'newly-allowed': t.newly_allowed > 0,
    'newly-denied': t.newly_denied > 0,
    undeterminable: t.undeterminable > 0,
  };
  const failed = args.failOn.some((f) => (f === 'any' ? Object.values(happened).some(Boolean) : happened[f]));
  return {
    candidate: {
      path: args.candidatePath,
      entrypoint: args.entrypoint,
      revision: candidate.revision,
      sources: candidate.sources,
      reads: candidate.reads ? candidate.reads.paths.map(formatInputPath) : null,
      nondeterministic: candidate.nondeterministic,
    },
    trail: args.trail,
    totals: t,
    newly_denied: args.groups.sorted('newly_denied'),
    newly_allowed: args.groups.sorted('newly_allowed'),
    undeterminable: args.groups.sorted('undeterminable'),
    unreadable: result.unreadable,
    notes,
    fail_on: args.failOn,
    failed,
  };
}

const reasonText = (reasons: readonly string[]) => (reasons.length ? reasons.join('; ') : '-');

/** The report as text, for a terminal. */
export function reportText(r: ReplayReport): string {
  const t = r.totals;
  const w = String(t.records).length;
  const n = (v: number) => String(v).padStart(w);
  const lines = [
    `Replay of ${r.candidate.path} (${r.candidate.revision}) on ${r.trail}`,
    `  reads: ${r.candidate.reads === null ? 'not known (Wasm bundle)' : r.candidate.reads.join(', ') || 'nothing of the input'}`,
    '',
    `${n(t.records)}  decision records read`,
    `${n(t.judged)}  judged by the recorded policy`,
    `${n(t.unchanged)}    unchanged`,
    `${n(t.newly_denied)}    newly denied (allowed then, denied by the candidate)`,
    `${n(t.newly_allowed)}    newly allowed (denied then, allowed by the candidate)`,
    `${n(t.undeterminable)}    undeterminable (the candidate reads what was not recorded)`,
    `${n(t.skipped)}  skipped (refused before any policy ran)`,
  ];
  const section = (title: string, groups: readonly ReplayGroup[], flips: boolean) => {
    if (!groups.length) return;
    lines.push('', title);
    for (const g of groups) {
      const where = flips ? `route ${g.route}, agent ${g.agent}, tool ${g.tool}` : `route ${g.route}`;
      lines.push(`  ${String(g.count).padStart(w)}  ${where}: ${reasonText(g.reasons)}`);
      if (g.examples.length) lines.push(`  ${' '.repeat(w)}  e.g. ${g.examples.join(' ')}`);
    }
  };
  section("Newly denied (the candidate's reasons):", r.newly_denied, true);
  section('Newly allowed (the recorded reasons):', r.newly_allowed, true);
  section('Undeterminable:', r.undeterminable, false);
  const notes = [...r.notes, ...(r.unreadable ? [`${r.unreadable} line(s) are not JSON records and were skipped; run 'portcullis audit verify'`] : [])];
  if (notes.length) lines.push('', 'Notes:', ...notes.map((x) => `  - ${x}`));
  if (r.fail_on.length) lines.push('', `--fail-on ${r.fail_on.join(',')}: ${r.failed ? 'FAILED' : 'passed'}`);
  return `${lines.join('\n')}\n`;
}

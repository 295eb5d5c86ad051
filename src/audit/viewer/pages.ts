/**
 * The auditor's pages, rendered on the server with Preact (preact-render-to-string, through
 * htm's tagged templates: no build step). Every value from a record is a text child or an
 * attribute value, which Preact escapes, so agent- or upstream-controlled text (paths, tool
 * names, reasons, arguments) renders inert; no record value ever becomes a URL, a style, an event
 * handler or markup. Links are built only from this module's own paths with encoded parameters.
 * The pages run no script of their own but the chart file under /assets (CSP: script-src 'self').
 */
import htm from 'htm';
import { h, type VNode } from 'preact';
import { render } from 'preact-render-to-string';
import type { AuditFilter, QueryHit } from '../offline/query';
import type { VerifyReport } from '../offline/verify';
import type { Counts, TrailSummary, TrailView } from './trail-view';

const html = htm.bind(h);

/** The filters a timeline URL carries (query parameters), as strings. */
export interface FilterParams {
  readonly agent?: string;
  readonly user?: string;
  readonly route?: string;
  readonly tool?: string;
  readonly decision?: string;
  readonly code?: string;
  readonly since?: string;
  readonly until?: string;
}

export const FILTER_KEYS = ['agent', 'user', 'route', 'tool', 'decision', 'code', 'since', 'until'] as const;

/** A link to one of our pages with these parameters (never a record value as a URL). */
export function link(pathname: string, params: Readonly<Record<string, string | number | undefined>>): string {
  const q = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return q ? `${pathname}?${q}` : pathname;
}

/** The verdict banner, first on every page. */
function banner(r: VerifyReport): VNode {
  if (r.verdict === 'verified')
    return html`<div class="banner verified" id="verdict" data-verdict="verified">
      <strong>Verified.</strong> ${r.records} records, seq 1–${r.lastSeq}; signed checkpoints cover the trail up to seq ${r.coveredSeq}
      (${r.checkpoints} checkpoint${r.checkpoints === 1 ? '' : 's'}, key ${r.keys.join(', ') || 'audit.pub'}).
    </div>` as VNode;
  if (r.verdict === 'tampered') {
    const first = r.problems[0];
    return html`<div class="banner tampered" id="verdict" data-verdict="tampered" data-first-bad-seq=${first?.seq ?? ''}>
      <strong>Tampered.</strong> The first problem is at seq ${first?.seq ?? '(unknown)'} (${first?.file.split('/').pop()} line ${first?.line}): ${first?.problem}. ${r.problems.length > 1 ? `${r.problems.length - 1} more problem(s) after it.` : ''} Nothing after it can be trusted.
    </div>` as VNode;
  }
  return html`<div class="banner unverifiable" id="verdict" data-verdict="unverifiable">
    <strong>Unverifiable.</strong> ${r.unverifiable.join('; ')}${r.coveredSeq > 0 ? ` Signed checkpoints cover up to seq ${r.coveredSeq}.` : ''}
  </div>` as VNode;
}

/** What every page shows while the trail is still being verified: where it is, and a refresh. */
export function loadingPage(
  p: { readonly phase: string; readonly done: number; readonly total: number; readonly records: number } | null,
  failure: string | null,
): string {
  const what = failure
    ? html`<div class="banner tampered" id="verdict" data-verdict="error"><strong>Cannot read the trail.</strong> ${failure}</div>`
    : html`<div class="banner unverifiable" id="verdict" data-verdict="verifying">
        <strong>Verifying…</strong> ${
          p === null
            ? 'starting'
            : p.phase === 'verifying'
              ? `segment ${p.done + 1} of ${p.total}, ${p.records} records checked so far`
              : `verified; summarising: ${p.records} of ${p.total} records`
        }. Nothing is shown until the verdict is known.
        <progress max=${p?.total || 1} value=${p?.phase === 'verifying' ? p.done : (p?.records ?? 0)}></progress>
      </div>`;
  const doc = html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      ${failure ? '' : html`<meta http-equiv="refresh" content="1" />`}
      <title>Verifying — Portcullis audit</title>
      <link rel="stylesheet" href="/assets/viewer.css" />
    </head>
    <body>${what}</body>
  </html>` as VNode;
  return `<!doctype html>${render(doc)}`;
}

const NAV: readonly (readonly [string, string])[] = [
  ['/timeline', 'Timeline'],
  ['/denies', 'Denies'],
  ['/credentials', 'Credentials'],
  ['/policies', 'Policy revisions'],
];

/** A whole page: banner, navigation, content. */
export function page(view: TrailView, title: string, current: string, body: VNode | VNode[]): string {
  const doc = html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      <title>${title} — Portcullis audit</title>
      <link rel="stylesheet" href="/assets/viewer.css" />
    </head>
    <body>
      ${banner(view.report)}
      <nav>${NAV.map(([href, label]) => html`<a href=${href} class=${href === current ? 'current' : ''}>${label}</a>`)}</nav>
      <main><h1>${title}</h1>${body}</main>
      <script src="/assets/chart.umd.js"></script>
      <script src="/assets/viewer.js"></script>
    </body>
  </html>` as VNode;
  return `<!doctype html>${render(doc)}`;
}

function filterForm(params: FilterParams): VNode {
  const field = (name: (typeof FILTER_KEYS)[number], label: string, placeholder = '') =>
    html`<label>${label} <input name=${name} value=${params[name] ?? ''} placeholder=${placeholder} /></label>`;
  return html`<form method="get" action="/timeline" class="filters" id="filters">
    ${field('agent', 'Agent')} ${field('user', 'On behalf of')} ${field('route', 'Route')} ${field('tool', 'Tool')}
    <label>Decision <select name="decision">
      ${['', 'allow', 'deny'].map((d) => html`<option value=${d} selected=${(params.decision ?? '') === d}>${d || 'any'}</option>`)}
    </select></label>
    ${field('code', 'Error code', 'PC_POLICY_DENIED')} ${field('since', 'Since', '2026-12-01 or 24h')} ${field('until', 'Until')}
    <button type="submit">Filter</button>
  </form>` as VNode;
}

const cell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

/** The timeline: filters, a page of decisions, paging and export links. */
export function timelineBody(hits: readonly QueryHit[], params: FilterParams, offset: number, pageSize: number, more: boolean): VNode[] {
  const exportLink = (format: string) => link('/export', { ...params, format });
  return [
    filterForm(params),
    html`<p class="exports">Export this view:
      ${['jsonl', 'csv', 'ocsf', 'ecs'].map((f) => html` <a href=${exportLink(f)} class="export" data-format=${f}>${f.toUpperCase()}</a>`)}
    </p>` as VNode,
    html`<table id="timeline">
      <thead><tr><th>seq</th><th>time</th><th>agent</th><th>on behalf of</th><th>route</th><th>method</th><th>path</th><th>tool</th><th>decision</th><th>code</th><th>reasons</th><th>credential</th><th>status</th></tr></thead>
      <tbody>
        ${hits.map(({ record: r, outcome }) => {
          const mcp = r.mcp as { tool?: unknown } | undefined;
          return html`<tr class=${r.decision === 'deny' ? 'deny' : 'allow'}>
            <td><a href=${link(`/decision/${encodeURIComponent(String(r.decision_id))}`, {})}>${cell(r.seq)}</a></td>
            <td>${cell(r.time)}</td><td>${cell(r.agent)}</td><td>${cell(r.on_behalf_of)}</td><td>${cell(r.route)}</td>
            <td>${cell(r.method)}</td><td class="path">${cell(r.path)}</td><td>${cell(mcp?.tool)}</td>
            <td>${cell(r.decision)}</td><td>${cell(r.code)}</td>
            <td>${Array.isArray(r.reasons) ? r.reasons.map((x) => html`<div>${cell(x)}</div>`) : ''}</td>
            <td>${cell(r.credential)}${Array.isArray(r.credential_scopes) ? ` [${r.credential_scopes.join(' ')}]` : ''}</td>
            <td>${outcome ? cell(outcome.status) : ''}</td>
          </tr>`;
        })}
      </tbody>
    </table>` as VNode,
    html`<p class="paging">
      ${offset > 0 ? html`<a href=${link('/timeline', { ...params, offset: Math.max(0, offset - pageSize) })} rel="prev">← newer page</a>` : ''}
      <span> records ${hits.length ? offset + 1 : 0}–${offset + hits.length} </span>
      ${more ? html`<a href=${link('/timeline', { ...params, offset: offset + pageSize })} rel="next" id="next">next page →</a>` : ''}
    </p>` as VNode,
  ];
}

/** A table of counts, with a chart drawn from the same numbers (viewer.js reads the data attributes). */
function countsTable(id: string, title: string, counts: Counts, linkFor?: (value: string) => string | null): VNode {
  return html`<section>
    <h2>${title}</h2>
    <div class="chart-box"><canvas class="chart" data-for=${id}></canvas></div>
    <table id=${id} class="counts">
      <thead><tr><th>value</th><th>count</th></tr></thead>
      <tbody>${counts.map(([v, n]) => html`<tr><td class="label">${linkFor?.(v) ? html`<a href=${linkFor(v)}>${v}</a>` : v}</td><td class="n">${n}</td></tr>`)}</tbody>
    </table>
  </section>` as VNode;
}

export function deniesBody(s: TrailSummary): VNode[] {
  return [
    html`<p>${s.denied} of ${s.decisions} decisions were denies.</p>` as VNode,
    countsTable('by-reason', 'Denies by reason', s.deniesByReason),
    countsTable('by-tool', 'Denies by tool', s.deniesByTool, (t) => (t.startsWith('(') ? null : link('/timeline', { decision: 'deny', tool: t }))),
    countsTable('by-code', 'Denies by error code', s.deniesByCode, (c) => link('/timeline', { decision: 'deny', code: c })),
  ];
}

export function credentialsBody(s: TrailSummary): VNode[] {
  return [
    html`<p>${s.allowed} allowed calls; the credential (and OAuth scopes) each got. Values are never in the trail: only names and keyed fingerprints.</p>` as VNode,
    countsTable('by-credential', 'Allowed calls by credential', s.credentials),
  ];
}

export function policiesBody(s: TrailSummary): VNode {
  return html`<table id="revisions">
    <thead><tr><th>revision</th><th>loaded</th><th>first decision</th><th>last decision</th><th>decisions</th></tr></thead>
    <tbody>${s.revisions.map((r) => html`<tr><td>${r.revision}</td><td>${cell(r.loadedAt)}</td><td>${cell(r.firstDecision)}</td><td>${cell(r.lastDecision)}</td><td>${r.decisions}</td></tr>`)}</tbody>
  </table>` as VNode;
}

export function decisionBody(d: {
  record: Record<string, unknown>;
  file: string;
  line: number;
  checkpoint: { seq: number; size: number; time: string | null } | null;
}): VNode {
  return html`<dl id="position">
      <dt>seq</dt><dd>${cell(d.record.seq)}</dd>
      <dt>segment</dt><dd>${d.file.split('/').pop()}, line ${d.line}</dd>
      <dt>prev (SHA-256 of the line before)</dt><dd>${cell(d.record.prev)}</dd>
      <dt>covered by checkpoint</dt><dd>${d.checkpoint ? `seq ${d.checkpoint.seq} (signs the first ${d.checkpoint.size} records, ${d.checkpoint.time ?? ''})` : 'none yet: no signed checkpoint covers it'}</dd>
    </dl>
    <h2>Record</h2>
    <pre id="record">${JSON.stringify(d.record, null, 2)}</pre>` as VNode;
}

/** The filter a timeline URL asks for. */
export function filterOf(params: FilterParams, parseTime: (v: string) => number): AuditFilter {
  return {
    ...(params.agent ? { agents: [params.agent] } : {}),
    ...(params.route ? { routes: [params.route] } : {}),
    ...(params.tool ? { tools: [params.tool] } : {}),
    ...(params.decision === 'allow' || params.decision === 'deny' ? { decision: params.decision } : {}),
    ...(params.code ? { codes: [params.code] } : {}),
    ...(params.user ? { onBehalfOf: [params.user] } : {}),
    ...(params.since ? { since: parseTime(params.since) } : {}),
    ...(params.until ? { until: parseTime(params.until) } : {}),
  };
}

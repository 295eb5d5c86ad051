/**
 * Stage `filter-list`: on MCP routes, `tools/list`, `prompts/list` and `resources/list` answers
 * show only the items the policy would let the agent use (src/mcp/list-filter.ts). An answer the
 * filter cannot read (neither JSON nor SSE) is cut off, never passed on unfiltered (G13).
 */
import { PassThrough, type Transform } from 'node:stream';
import { createListFilter, isListMethod, ListFilterError, type ListMethod } from '../../mcp/list-filter';
import { TOOL_NAME } from '../../mcp/message';
import type { PolicyInput } from '../../policy/engine';
import type { PipelineDeps } from '../deps';
import { policyInput } from '../policy-input';
import type { ResponseStage } from './upstream-response';

/** What each list's items are judged as: a call to the item, without arguments. */
const VISIBILITY_PROBE: Readonly<Record<ListMethod, { method: string; key: 'tool' | 'name' | 'uri'; field: 'name' | 'uri' }>> = {
  'tools/list': { method: 'tools/call', key: 'tool', field: 'name' },
  'prompts/list': { method: 'prompts/get', key: 'name', field: 'name' },
  'resources/list': { method: 'resources/read', key: 'uri', field: 'uri' },
};

/**
 * Whether the agent may see a listed item: the policy's decision on a call to it with
 * `arguments: null` and `visibility: true` — or the decision's boolean `visible`, which wins.
 * Items the gateway would refuse to call (a bad tool name) are hidden; any policy error hides.
 */
function isVisible(input: PolicyInput, deps: PipelineDeps, list: ListMethod, item: Readonly<Record<string, unknown>>): boolean {
  const probe = VISIBILITY_PROBE[list];
  const target = item[probe.field];
  if (typeof target !== 'string' || target.length === 0) return false;
  if (probe.key === 'tool' && !TOOL_NAME.test(target)) return false;
  if (!deps.policy.ready) return false;
  const decision = deps.policy.current.decide({
    ...input,
    mcp: {
      ...(input.mcp as Record<string, unknown>),
      kind: 'request',
      method: probe.method,
      id: null,
      tool: null,
      name: null,
      uri: null,
      arguments: null,
      [probe.key]: target,
      visibility: true,
    },
  });
  if (decision.error !== undefined) return false;
  const visible = decision.extra?.visible;
  return typeof visible === 'boolean' ? visible : decision.allow;
}

/** A transform that fails at once: the answer is cut off rather than passed on unchecked. */
function refuseStream(err: Error): Transform {
  return new PassThrough({
    transform(_chunk, _enc, cb) {
      cb(err);
    },
    flush(cb) {
      cb(err);
    },
  });
}

export const filterList: ResponseStage = {
  name: 'filter-list',
  run(r, ctx, deps) {
    const m = ctx.mcp;
    if (m === null || m.kind !== 'request' || !isListMethod(m.method) || r.status < 200 || r.status >= 300 || r.bodyless) return;
    // A dry-run route enforces nothing: the agent sees the whole list.
    if (ctx.route!.mode === 'dry_run') return;
    const list = m.method;
    const route = ctx.route!.name;
    // The call's own input, built once; each listed item is probed against it.
    const input = policyInput(ctx);
    const filter = createListFilter(r.upstream['content-type'], {
      method: list,
      requestId: m.id!,
      visible: (item) => isVisible(input, deps, list, item),
      onFiltered: (removed, kept) => deps.log.debug({ decision_id: ctx.id, route, removed, kept }, 'filtered an MCP list'),
    });
    r.steps.push(filter ?? refuseStream(new ListFilterError('mcp_list_filter_failed', 'the list answer could not be filtered')));
    delete r.headers['content-length'];
  },
};

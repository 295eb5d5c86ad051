/**
 * The request pipeline. The order of stages is the PIPELINE array below and nowhere else;
 * each stage is a small adapter over the module that owns the logic. A stage that refuses a
 * call throws a GatewayError; `localReply` (local-reply.ts) is the one place that turns it into
 * an answer and an audit record. Nothing is forwarded unless every stage before `forward` ran.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Transform } from 'node:stream';
import type { Logger } from 'pino';
import type { DecisionRecord } from '../audit/record';
import type { AuditSink } from '../audit/writer';
import type { CredentialBinding } from '../credential-injector/injector';
import { GatewayError } from '../errors';
import { mcpAuditView } from '../mcp/audit-view';
import { createListFilter, isListMethod, ListFilterError, type ListMethod } from '../mcp/list-filter';
import { parseMcpCall, TOOL_NAME } from '../mcp/message';
import type { SessionTable } from '../mcp/sessions';
import type { Metrics } from '../observability/metrics';
import type { PolicyInput } from '../policy/engine';
import type { PolicyStore } from '../policy/policy-store';
import { canonicalizeTarget, queryObject } from './canonical-path';
import type { CallContext } from './context';
import { elapsedMs } from './context';
import type { Forwarder } from './forward';
import { assertSingletonHeaders, clientOf, forwardableRequestHeaders, isJsonContentType } from './headers';
import type { AgentIdentifier } from './identify';
import { readBody } from './read-body';
import type { RouteTable } from './route-table';
import { assertNoMethodOverride } from './method-override';
import { assertHttp1 } from './parser-refusal';
import { parseJsonBody } from './strict-json';

/** Everything the stages use, built once per configuration. */
export interface PipelineDeps {
  readonly identifier: AgentIdentifier;
  readonly routes: RouteTable;
  readonly maxBodyBytes: number;
  readonly policy: PolicyStore;
  readonly audit: AuditSink;
  readonly bindings: ReadonlyMap<string, CredentialBinding>;
  readonly forwarder: Forwarder;
  /** MCP sessions bound to the agents that created them. */
  readonly sessions: SessionTable;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** A named pipeline stage. */
export interface Stage {
  readonly name: string;
  run(ctx: CallContext, deps: PipelineDeps): void | Promise<void>;
}

const identify: Stage = {
  name: 'identify',
  run(ctx, deps) {
    assertSingletonHeaders(ctx.req);
    ctx.agent = deps.identifier.identify(ctx.req.headers.authorization);
  },
};

const route: Stage = {
  name: 'route',
  run(ctx, deps) {
    ctx.target = canonicalizeTarget(ctx.req.url ?? '');
    const m = deps.routes.match(ctx.target.path);
    ctx.route = m.route;
    ctx.relativePath = m.relativePath;
    deps.metrics.requests.inc({ route: m.route.name });
  },
};

const readBodyStage: Stage = {
  name: 'read-body',
  async run(ctx, deps) {
    const enc = ctx.req.headers['content-encoding'];
    if (enc && enc.toLowerCase() !== 'identity') {
      throw new GatewayError('PC_UNSUPPORTED_ENCODING', 'compressed request bodies are not accepted');
    }
    ctx.body = await readBody(ctx.req, deps.maxBodyBytes);
  },
};

const decode: Stage = {
  name: 'decode',
  run(ctx, deps) {
    ctx.headers = forwardableRequestHeaders(ctx.req.headers, ctx.route!, clientOf(ctx.req));
    assertHttp1(ctx.req);
    assertNoMethodOverride(ctx.req.headers, ctx.target!.query, ctx.body);
    if (ctx.body.length > 0 && isJsonContentType(ctx.req.headers['content-type'])) ctx.json = parseJsonBody(ctx.body);
    if (ctx.route!.kind === 'mcp') decodeMcp(ctx, deps);
  },
};

/** MCP routes: one endpoint, one JSON-RPC message per POST, sessions only for their agent. */
function decodeMcp(ctx: CallContext, deps: PipelineDeps): void {
  const route = ctx.route!;
  if (ctx.relativePath !== '/') throw new GatewayError('PC_ROUTE_NOT_FOUND', 'an MCP route has one endpoint: its prefix');
  ctx.mcp = parseMcpCall(ctx.req.method ?? '', ctx.req.headers, ctx.json, ctx.body.length > 0);
  // Answers must stay readable: lists are filtered and secrets masked in the bytes as sent.
  ctx.headers!['accept-encoding'] = 'identity';
  const sid = ctx.mcp.sessionId;
  if (sid === null) return;
  const check = deps.sessions.check(route.name, sid, ctx.agent);
  if (check !== 'ok') {
    // Another agent's session and an unknown one get the same answer: no oracle for live ids.
    // The operator's log tells them apart: a session used by another agent is a security event.
    if (check === 'other-agent') deps.log.warn({ decision_id: ctx.id, route: route.name, agent: ctx.agent }, 'an agent presented an MCP session that belongs to another agent');
    throw new GatewayError('PC_MCP_SESSION_NOT_FOUND', 'no such MCP session: start a new one with initialize', ['the session is unknown, has ended, or belongs to another agent']);
  }
  ctx.mcpSession = sid;
}

/** The policy's view of an MCP call (docs/mcp.md). */
function mcpInput(ctx: CallContext): Record<string, unknown> {
  const m = ctx.mcp!;
  return {
    kind: m.kind,
    method: m.method,
    id: m.id,
    tool: m.tool,
    arguments: m.arguments,
    uri: m.uri,
    name: m.name,
    protocol_version: m.protocolVersion,
    session: ctx.mcpSession,
  };
}

/** What the policy sees of a call (docs/policy.md, docs/mcp.md). */
function policyInput(ctx: CallContext): PolicyInput {
  return {
    route: ctx.route!.name,
    agent: ctx.agent === null ? null : { id: ctx.agent },
    request: {
      method: ctx.req.method ?? 'GET',
      path: ctx.relativePath!,
      query: queryObject(ctx.target!.query),
      headers: ctx.headers!,
      ...(ctx.json !== undefined ? { body: ctx.json } : {}),
    },
    time: ctx.time,
    ...(ctx.mcp ? { mcp: mcpInput(ctx) } : {}),
  };
}

const decide: Stage = {
  name: 'decide',
  run(ctx, deps) {
    const route = ctx.route!;
    const input = policyInput(ctx);
    const engine = deps.policy.ready ? deps.policy.current : null;
    const t0 = process.hrtime.bigint();
    const decision = engine ? engine.decide(input) : { allow: false, reasons: ['policy error: no policy is loaded'], error: 'no policy is loaded' };
    deps.metrics.policyEvalSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    ctx.decision = decision;
    ctx.policyRevision = engine?.revision ?? null;
    if (decision.error !== undefined) {
      deps.log.warn({ decision_id: ctx.id, route: route.name, cause: decision.error }, 'policy failed to decide; denying');
      throw new GatewayError('PC_POLICY_ERROR', 'the policy could not decide this call', decision.reasons);
    }
    if (!decision.allow) throw new GatewayError('PC_POLICY_DENIED', 'denied by policy', decision.reasons);
  },
};

const auditDecision: Stage = {
  name: 'audit-decision',
  async run(ctx, deps) {
    const route = ctx.route!;
    try {
      await deps.audit.append(decisionRecord(ctx, { decision: 'allow', reasons: ctx.decision!.reasons, credential: route.credential?.name ?? null }));
    } catch (err) {
      deps.metrics.auditFailures.inc();
      deps.log.error({ decision_id: ctx.id, err: (err as Error).message }, 'audit write failed; refusing the call');
      throw new GatewayError('PC_AUDIT_UNAVAILABLE', 'the decision could not be recorded; nothing was forwarded', ['audit log unavailable']);
    }
    ctx.audited = true;
    deps.metrics.decisions.inc({ route: route.name, decision: 'allow', code: '' });
  },
};

const injectCredential: Stage = {
  name: 'inject-credential',
  run(ctx, deps) {
    // Only after the decision is allowed and durably recorded, and only this route's credential.
    const binding = deps.bindings.get(ctx.route!.name) ?? null;
    if (!binding) return;
    binding.attach(ctx.headers!);
    // A compressed answer would hide an echoed secret from the masker.
    ctx.headers!['accept-encoding'] = 'identity';
    ctx.binding = binding;
  },
};

const forward: Stage = {
  name: 'forward',
  async run(ctx, deps) {
    const route = ctx.route!;
    const target = ctx.target!;
    const path = (route.mcp ? route.mcp.endpoint : route.basePath + ctx.relativePath!.slice(1)) + (target.search ? `?${target.search}` : '');
    let status: number;
    let code: string | undefined;
    try {
      const r = await deps.forwarder.forward(
        {
          route,
          method: ctx.req.method ?? 'GET',
          path,
          headers: ctx.headers!,
          body: ctx.body,
          decisionId: ctx.id,
          binding: ctx.binding,
          ...(ctx.mcp ? { onResponse: (status: number, headers: IncomingHttpHeaders) => mcpResponse(ctx, deps, status, headers) } : {}),
        },
        ctx.res,
      );
      status = r.status;
      code = r.code;
      deps.metrics.upstreamSeconds.observe({ route: route.name, status_class: `${Math.floor(r.status / 100)}xx` }, r.headersMs / 1000);
      if (r.masked) {
        deps.metrics.secretsMasked.inc({ route: route.name });
        deps.log.warn({ decision_id: ctx.id, route: route.name }, 'the upstream echoed a credential; it was masked');
      }
    } catch (err) {
      const e = err instanceof GatewayError ? err : new GatewayError('PC_UPSTREAM_UNAVAILABLE', 'the upstream is unavailable');
      deps.metrics.upstreamErrors.inc({ route: route.name, code: e.code });
      throw e;
    } finally {
      // The outcome record is written after the fact; its failure cannot undo the call.
      if (status! !== undefined) writeOutcome(ctx, deps, status!, code);
    }
    if (code) deps.metrics.upstreamErrors.inc({ route: route.name, code });
  },
};

/**
 * Upstream answers on MCP routes: learn the session an initialize created (bound to this
 * agent), forget one that ended, and filter list results down to what the policy lets the
 * agent see.
 */
function mcpResponse(ctx: CallContext, deps: PipelineDeps, status: number, headers: IncomingHttpHeaders): Transform | null {
  const m = ctx.mcp!;
  const route = ctx.route!.name;
  const ok = status >= 200 && status < 300;
  if (m.method === 'initialize' && ok) {
    const sid = headers['mcp-session-id'];
    if (typeof sid === 'string' && sid.length > 0) deps.sessions.bind(route, sid, ctx.agent);
  }
  if (ctx.mcpSession !== null && ((m.kind === 'terminate' && ok) || status === 404)) deps.sessions.end(route, ctx.mcpSession);
  if (m.kind !== 'request' || !isListMethod(m.method) || !ok) return null;
  const encoding = headers['content-encoding'];
  const list = m.method;
  // The call's own input, built once; each listed item is probed against it.
  const input = policyInput(ctx);
  // A list the filter cannot read (compressed, or neither JSON nor SSE) is cut off, never passed on.
  const filter = encoding && encoding !== 'identity' ? null : createListFilter(headers['content-type'], {
    method: list,
    requestId: m.id!,
    visible: (item) => isVisible(input, deps, list, item),
    onFiltered: (removed, kept) => deps.log.debug({ decision_id: ctx.id, route, removed, kept }, 'filtered an MCP list'),
  });
  return filter ?? refuseStream(new ListFilterError('mcp_list_filter_failed', 'the list answer could not be filtered'));
}

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
    mcp: { ...(input.mcp as Record<string, unknown>), kind: 'request', method: probe.method, id: null, tool: null, name: null, uri: null, arguments: null, [probe.key]: target, visibility: true },
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

/** Longest path (with query) kept verbatim in a decision record; longer ones are cut, flagged and digested. */
export const AUDIT_PATH_CAP = 4096;

/** The decision record of a call: what the context knows, plus the verdict. */
export function decisionRecord(ctx: CallContext, verdict: Pick<DecisionRecord, 'decision' | 'reasons' | 'credential' | 'code' | 'status'>): DecisionRecord {
  // The canonical path and query as forwarded; before routing there is none: the raw target.
  const fullPath = ctx.relativePath !== null ? ctx.relativePath + (ctx.target?.search ? `?${ctx.target.search}` : '') : (ctx.req.url ?? '');
  const capped = fullPath.length > AUDIT_PATH_CAP;
  return {
    type: 'decision',
    time: ctx.time,
    decision_id: ctx.id,
    agent: ctx.agent,
    route: ctx.route?.name ?? null,
    method: ctx.req.method ?? '',
    path: capped ? fullPath.slice(0, AUDIT_PATH_CAP) : fullPath,
    ...(capped ? { truncated: ['path'], path_sha256: createHash('sha256').update(fullPath).digest('hex') } : {}),
    // The body is evidence by digest only: its content may hold secrets and can be megabytes.
    ...(ctx.body.length ? { body: { bytes: ctx.body.length, sha256: createHash('sha256').update(ctx.body).digest('hex') } } : {}),
    decision: verdict.decision,
    reasons: verdict.reasons,
    ...(verdict.code ? { code: verdict.code, status: verdict.status } : {}),
    policy_revision: ctx.policyRevision,
    credential: verdict.credential,
    ...(ctx.mcp ? { mcp: mcpAuditView(ctx.mcp, ctx.mcpSession, ctx.decision?.extra?.mask) } : {}),
  };
}

/** Appends the outcome record of a forwarded call (not awaited by the caller). */
export function writeOutcome(ctx: CallContext, deps: PipelineDeps, status: number, code?: string): void {
  deps.audit
    .append({ type: 'outcome', time: new Date().toISOString(), decision_id: ctx.id, status, latency_ms: elapsedMs(ctx), ...(code ? { code } : {}) }, { lazy: true })
    .catch((err: Error) => {
      deps.metrics.auditFailures.inc();
      deps.log.error({ decision_id: ctx.id, err: err.message }, 'audit outcome write failed');
    });
}

/** The pipeline, in order. Reordering stages is a one-line change here. */
export const PIPELINE: readonly Stage[] = Object.freeze([identify, route, readBodyStage, decode, decide, auditDecision, injectCredential, forward]);

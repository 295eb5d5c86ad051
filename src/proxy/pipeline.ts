/**
 * The request pipeline. The order of stages is the PIPELINE array below and nowhere else;
 * each stage is a small adapter over the module that owns the logic. A stage that refuses a
 * call throws a GatewayError; `localReply` (local-reply.ts) is the one place that turns it into
 * an answer and an audit record. Nothing is forwarded unless every stage before `forward` ran.
 */
import { decisionRecord, outcomeRecord } from '../audit/call-records';
import { chooseCredential, NO_CALLER, subjectTokenOf } from '../credential-injector/choose';
import { hostAndOrigin, judgeEdge } from '../edge/allow-list';
import { GatewayError } from '../errors';
import type { AgentIdentity } from '../identity/identity-method';
import { parseMcpCall } from '../mcp/message';
import type { Decision } from '../policy/engine';
import { judgeInShadow } from '../policy/shadow';
import { canonicalizeTarget } from './canonical-path';
import { callFacts, type CallContext, elapsedMs } from './context';
import type { PipelineDeps } from './deps';
import type { ForwardResult } from './forward';
import { assertNoCredentialQuery, assertSingletonHeaders, clientOf, forwardableRequestHeaders, isJsonContentType } from './headers';
import { localReply } from './local-reply';
import { assertNoMethodOverride } from './method-override';
import { assertHttp1 } from './parser-refusal';
import { policyInput } from './policy-input';
import { hasBody, readBody } from './read-body';
import { callEndChannel, stageChannel, stageRefusedChannel, type CallEndMessage, type StageMessage, type StageRefusedMessage } from '../observability/channels';
import { planResponse } from './response/response-pipeline';
import { parseJsonBody } from './strict-json';

export type { PipelineDeps } from './deps';

/** A named pipeline stage. */
export interface Stage {
  readonly name: string;
  run(ctx: CallContext, deps: PipelineDeps): void | Promise<void>;
}

const admit: Stage = {
  name: 'admit',
  run(_ctx, deps) {
    // Before anything else costs memory: refuse rather than let the process die mid-call.
    if (deps.memory.pressed) throw new GatewayError('PC_OVERLOADED', 'the gateway is short of memory and takes no new calls for now');
  },
};

/** A header value as a refusal quotes it: JSON, at most 200 characters. */
function quoted(value: string | undefined): string {
  if (value === undefined) return '(none)';
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}

const checkEdge: Stage = {
  name: 'check-edge',
  run(ctx, deps) {
    // Before the key or the body is looked at: a DNS-rebinding page is refused on Host or Origin
    // alone (src/edge/allow-list.ts). Host only: proxy headers are the agent's words, not facts.
    const { host, origin } = hostAndOrigin(ctx.req.rawHeaders);
    for (const [name, values] of [
      ['host', host],
      ['origin', origin],
    ] as const)
      if (values && values.length > 1) throw new GatewayError('PC_DUPLICATE_HEADER', `the ${name} header appears more than once`);
    const refused = judgeEdge(deps.edge, host, origin);
    if (refused === 'host')
      throw new GatewayError('PC_BAD_HOST', 'this listener does not answer to that Host', [`Host ${quoted(ctx.req.headers.host)} is not allowed`]);
    if (refused === 'origin')
      throw new GatewayError('PC_BAD_ORIGIN', 'requests from that Origin are not accepted', [`Origin ${quoted(ctx.req.headers.origin)} is not allowed`]);
  },
};

const identify: Stage = {
  name: 'identify',
  run(ctx, deps) {
    assertSingletonHeaders(ctx.req);
    // After the route: which methods, resource and scopes apply is the route's (routes[].identity).
    const found = deps.identifiers.get(ctx.route!.name)!.identify(ctx.req.headers.authorization, ctx.req.url ?? '', ctx.req.socket);
    // Agent keys are checked synchronously; only a token method costs a promise.
    if (found instanceof Promise) return found.then((identity) => setIdentity(ctx, identity));
    setIdentity(ctx, found);
  },
};

function setIdentity(ctx: CallContext, identity: AgentIdentity | null): void {
  ctx.identity = identity;
  ctx.agent = identity?.id ?? null;
}

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
  run(ctx, deps) {
    const enc = ctx.req.headers['content-encoding'];
    if (enc && enc.toLowerCase() !== 'identity') {
      throw new GatewayError('PC_UNSUPPORTED_ENCODING', 'compressed request bodies are not accepted');
    }
    // A call whose framing announces no body costs no promise (ctx.body starts empty).
    if (!hasBody(ctx.req)) return;
    return readBody(ctx.req, deps.maxBodyBytes).then((body) => {
      ctx.body = body;
    });
  },
};

const decode: Stage = {
  name: 'decode',
  run(ctx, deps) {
    ctx.headers = forwardableRequestHeaders(ctx.req.headers, ctx.route!, clientOf(ctx.req));
    assertNoCredentialQuery(ctx.target!.query, ctx.route!);
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
    if (check === 'other-agent')
      deps.log.warn({ decision_id: ctx.id, route: route.name, agent: ctx.agent }, 'an agent presented an MCP session that belongs to another agent');
    throw new GatewayError('PC_MCP_SESSION_NOT_FOUND', 'no such MCP session: start a new one with initialize', [
      'the session is unknown, has ended, or belongs to another agent',
    ]);
  }
  ctx.mcpSession = sid;
}

const decide: Stage = {
  name: 'decide',
  run(ctx, deps) {
    const route = ctx.route!;
    const input = policyInput(ctx);
    ctx.policyInput = input;
    const engine = deps.policy.ready ? deps.policy.current : null;
    const t0 = process.hrtime.bigint();
    const decision = engine ? engine.decide(input) : { allow: false, reasons: ['policy error: no policy is loaded'], error: 'no policy is loaded' };
    deps.metrics.policyEvalSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    ctx.decision = decision;
    ctx.policyRevision = engine?.revision ?? null;
    if (route.shadow !== null) {
      // On the very input the enforcing policy saw; recorded, counted, and nothing else.
      ctx.shadow = judgeInShadow(route.shadow, input);
      if (ctx.shadow !== null) deps.metrics.policyShadow.inc({ route: route.name, agreement: ctx.shadow.allow === decision.allow ? 'agree' : 'disagree' });
    }
    if (decision.error !== undefined)
      deps.log.warn(
        { decision_id: ctx.id, route: route.name, cause: decision.error },
        route.mode === 'dry_run' ? 'policy failed to decide; forwarded all the same (dry run)' : 'policy failed to decide; denying',
      );
    // A dry-run route enforces nothing: audit-decision records the verdict (enforced: false) and the call goes on.
    if (route.mode === 'dry_run' || (decision.allow && decision.error === undefined)) return;
    if (decision.error !== undefined) throw new GatewayError('PC_POLICY_ERROR', 'the policy could not decide this call', decision.reasons);
    throw new GatewayError('PC_POLICY_DENIED', 'denied by policy', decision.reasons);
  },
};

/** On a dry-run route, the code the call would have been refused with; null when the policy allowed it. */
function dryRunCode(d: Decision): 'PC_POLICY_ERROR' | 'PC_POLICY_DENIED' | null {
  if (d.error !== undefined) return 'PC_POLICY_ERROR';
  return d.allow ? null : 'PC_POLICY_DENIED';
}

const auditDecision: Stage = {
  name: 'audit-decision',
  async run(ctx, deps) {
    const route = ctx.route!;
    const refusedAs = route.mode === 'dry_run' ? dryRunCode(ctx.decision!) : null;
    try {
      const a = ctx.attachment;
      await deps.audit.append(
        decisionRecord(callFacts(ctx), {
          // On a dry-run route, the policy's verdict as it was (the record says enforced: false).
          decision: refusedAs === null ? 'allow' : 'deny',
          ...(refusedAs !== null ? { code: refusedAs } : {}),
          reasons: ctx.decision!.reasons,
          credential: ctx.credentialName,
          ...(a !== null ? { credential_fingerprint: a.fingerprint, ...(a.scopes !== null ? { credential_scopes: a.scopes } : {}) } : {}),
        }),
      );
    } catch (err) {
      deps.metrics.auditFailures.inc();
      deps.log.error({ decision_id: ctx.id, err: (err as Error).message }, 'audit write failed; refusing the call');
      throw new GatewayError('PC_AUDIT_UNAVAILABLE', 'the decision could not be recorded; nothing was forwarded', ['audit log unavailable']);
    }
    ctx.audited = true;
    deps.metrics.decisions.inc({ route: route.name, decision: refusedAs === null ? 'allow' : 'dry_run_deny', code: refusedAs ?? '' });
  },
};

const obtainCredential: Stage = {
  name: 'obtain-credential',
  run(ctx) {
    // After the allow, before the record: the record names what the call gets (by fingerprint).
    const choice = chooseCredential(ctx.route!, ctx.decision!);
    if (choice === null) return;
    ctx.credentialName = choice.provider.name;
    const p = choice.provider;
    const obtained = p.obtain(
      !p.needsCaller && choice.scopes === null
        ? NO_CALLER
        : { identity: ctx.identity, subjectToken: subjectTokenOf(ctx.identity?.method, ctx.req.headers.authorization), scopes: choice.scopes },
    );
    // A cached credential is synchronous; only a fetch costs a promise.
    if (obtained instanceof Promise)
      return obtained.then((a) => {
        ctx.attachment = a;
      });
    ctx.attachment = obtained;
  },
};

const injectCredential: Stage = {
  name: 'inject-credential',
  run(ctx) {
    // Only after the decision is allowed and durably recorded, and only the credential it chose.
    const route = ctx.route!;
    const target = ctx.target!;
    ctx.forwardPath = (route.mcp ? route.mcp.endpoint : route.basePath + ctx.relativePath!.slice(1)) + (target.search ? `?${target.search}` : '');
    const a = ctx.attachment;
    if (a === null) {
      ctx.secrets = route.secrets;
      return;
    }
    // A compressed answer would hide an echoed secret from the masker. Set before apply, so a
    // signature covers it like every other header sent.
    ctx.headers!['accept-encoding'] = 'identity';
    const applied = a.apply({ method: ctx.req.method ?? 'GET', origin: route.origin, path: ctx.forwardPath, headers: ctx.headers!, body: ctx.body });
    // Read after apply: a signature made by apply is one of the call's secrets (aws-sigv4.ts).
    if (applied instanceof Promise)
      return applied.then(() => {
        ctx.secrets = route.maskAll ? route.maskAll(a.secrets) : a.secrets;
      });
    // Every credential of the route is masked, not only the one attached (route-secrets.ts).
    ctx.secrets = route.maskAll ? route.maskAll(a.secrets) : a.secrets;
  },
};

const forward: Stage = {
  name: 'forward',
  async run(ctx, deps) {
    const route = ctx.route!;
    const path = ctx.forwardPath!;
    let r: ForwardResult;
    try {
      r = await route.upstream.forward(
        {
          method: ctx.req.method ?? 'GET',
          path,
          headers: ctx.headers!,
          body: ctx.body,
          decisionId: ctx.id,
          // The response half of the pipeline (response/response-pipeline.ts).
          respond: (status, headers) => planResponse(ctx, deps, status, headers),
        },
        ctx.res,
      );
    } catch (err) {
      const e = err instanceof GatewayError ? err : new GatewayError('PC_UPSTREAM_UNAVAILABLE', 'the upstream is unavailable');
      deps.metrics.upstreamErrors.inc({ route: route.name, code: e.code });
      throw e;
    }
    ctx.outcome = r.code ? { status: r.status, code: r.code } : { status: r.status };
    deps.metrics.upstreamSeconds.observe({ route: route.name, status_class: `${Math.floor(r.status / 100)}xx` }, r.headersMs / 1000);
    if (r.code) deps.metrics.upstreamErrors.inc({ route: route.name, code: r.code });
  },
};

/** The request pipeline, in order. Reordering stages is a one-line change here. */
export const PIPELINE: readonly Stage[] = Object.freeze([
  admit,
  checkEdge,
  route,
  identify,
  readBodyStage,
  decode,
  decide,
  obtainCredential,
  auditDecision,
  injectCredential,
  forward,
]);

/**
 * Runs one call: the stages in order, a refusal answered by `localReply`, and, for a call that
 * was allowed and recorded, its outcome record. This is the outcome record's one writer; it is
 * written after the fact and its failure cannot undo the call.
 */
export async function runCall(ctx: CallContext, deps: PipelineDeps, refuse?: GatewayError): Promise<void> {
  let at = 'admission';
  let refusal: GatewayError | null = null;
  try {
    if (refuse) throw refuse;
    for (const stage of PIPELINE) {
      at = stage.name;
      const t0 = stageChannel.hasSubscribers ? process.hrtime.bigint() : 0n;
      const pending = stage.run(ctx, deps);
      if (pending) await pending;
      if (stageChannel.hasSubscribers)
        stageChannel.publish({ decisionId: ctx.id, half: 'request', stage: at, durationMs: Number(process.hrtime.bigint() - t0) / 1e6 } satisfies StageMessage);
    }
  } catch (err) {
    refusal = err instanceof GatewayError ? err : null;
    if (at === 'route') await identifyForRecord(ctx, deps);
    if (stageRefusedChannel.hasSubscribers)
      stageRefusedChannel.publish({ decisionId: ctx.id, half: 'request', stage: at, code: refusal?.code ?? 'PC_INTERNAL_ERROR' } satisfies StageRefusedMessage);
    await localReply(ctx, err, deps);
  }
  if (ctx.audited) writeOutcome(ctx, deps);
  if (callEndChannel.hasSubscribers) {
    // The code the agent was answered with (the local reply may have turned a deny into an outage).
    const answered = ctx.res.getHeader('x-portcullis-error');
    const code = ctx.outcome?.code ?? (typeof answered === 'string' ? answered : (refusal?.code ?? null));
    callEndChannel.publish({
      decisionId: ctx.id,
      route: ctx.route?.name ?? null,
      agent: ctx.agent,
      status: ctx.outcome?.status ?? ctx.res.statusCode,
      code,
    } satisfies CallEndMessage);
  }
}

/**
 * A call no route serves was refused before identity (the route says which methods apply): its
 * record still names the agent when any method proves one. The answer is the same either way.
 */
async function identifyForRecord(ctx: CallContext, deps: PipelineDeps): Promise<void> {
  try {
    setIdentity(ctx, await deps.unroutedIdentifier.identify(ctx.req.headers.authorization, ctx.req.url ?? '', ctx.req.socket));
  } catch {
    /* no identity it can prove: the record says agent null */
  }
}

function writeOutcome(ctx: CallContext, deps: PipelineDeps): void {
  const o = ctx.outcome ?? { status: 502, code: 'PC_UPSTREAM_UNAVAILABLE' };
  deps.audit.append(outcomeRecord(ctx.id, o.status, elapsedMs(ctx), o.code), { lazy: true }).catch((err: Error) => {
    deps.metrics.auditFailures.inc();
    deps.log.error({ decision_id: ctx.id, err: err.message }, 'audit outcome write failed');
  });
}

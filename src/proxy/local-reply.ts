/**
 * The one place a refused call is answered (Envoy's "local reply"): it writes the deny record
 * to the audit log first, then sends a JSON error with a stable code and the decision id. No
 * stage writes a response by itself.
 */
import { decisionRecord } from '../audit/call-records';
import { GatewayError, toError } from '../errors';
import { bearerChallenge } from '../identity/challenge';
import { NO_ROUTE } from '../observability/metrics';
import { mcpReply } from '../mcp/reply';
import { canonicalizeTarget } from './canonical-path';
import { callFacts, type CallContext } from './context';
import type { PipelineDeps } from './deps';

/**
 * A call refused before it was routed (a bad key, a repeated header) still says where it was
 * going: the canonical target and the route it matches, when they can be found, go into its
 * record and decide the shape of its answer (JSON-RPC on an MCP route).
 */
function completeRouting(ctx: CallContext, deps: PipelineDeps): void {
  if (ctx.route !== null) return;
  try {
    ctx.target ??= canonicalizeTarget(ctx.req.url ?? '');
    const m = deps.routes.match(ctx.target.path);
    ctx.route = m.route;
    ctx.relativePath = m.relativePath;
  } catch {
    /* an unsafe target or no route: the record keeps what is known */
  }
}

function send(ctx: CallContext, err: GatewayError, deps: PipelineDeps): void {
  const res = ctx.res;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const route = ctx.route;
  // MCP clients are answered in JSON-RPC, never with a bare HTTP error.
  const reply = route?.mcp ? mcpReply(err, ctx.mcp, ctx.id, route.mcp.denyAs) : null;
  const prm = route?.mcp ? (deps.protectedResources?.forRoute(route.name) ?? null) : null;
  const challenge = bearerChallenge(err, prm?.metadataUrl ?? null);
  const body = JSON.stringify(reply ? reply.body : { error: { code: err.code, message: err.message, reasons: err.reasons, decision_id: ctx.id } });
  res.writeHead(reply ? reply.status : err.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-portcullis-decision-id': ctx.id,
    // Set only on Portcullis's own answers (stripped from upstream ones): tells a refusal
    // from an upstream error that happens to look like one.
    'x-portcullis-error': err.code,
    'cache-control': 'no-store',
    ...(err.status === 503 ? { 'retry-after': '1' } : {}),
    ...(challenge !== null ? { 'www-authenticate': challenge } : {}),
    ...(ctx.req.complete ? {} : { connection: 'close' }),
  });
  res.end(body);
}

/** Audits and answers a refused or failed call. Never throws. */
export async function localReply(ctx: CallContext, thrown: unknown, deps: PipelineDeps): Promise<void> {
  let err = thrown instanceof GatewayError ? thrown : new GatewayError('PC_INTERNAL_ERROR', 'the gateway failed unexpectedly; nothing was forwarded');
  if (!(thrown instanceof GatewayError)) {
    const e = toError(thrown);
    deps.log.error({ decision_id: ctx.id, err: e.message, stack: e.stack }, 'unexpected error in the pipeline; denied with PC_INTERNAL_ERROR');
  }
  completeRouting(ctx, deps);
  const routeName = ctx.route?.name ?? null;
  if (ctx.audited) {
    // Allowed and recorded, then the upstream failed: answer 502/504; the outcome record
    // (written by runCall, its one writer) says so.
    ctx.outcome ??= { status: err.status, code: err.code };
  } else {
    deps.metrics.decisions.inc({ route: routeName ?? NO_ROUTE, decision: 'deny', code: err.code });
    try {
      await deps.audit.append(decisionRecord(callFacts(ctx), { decision: 'deny', reasons: err.reasons, code: err.code, status: err.status, credential: null }));
    } catch (e) {
      deps.metrics.auditFailures.inc();
      deps.log.error({ decision_id: ctx.id, code: err.code, err: (e as Error).message }, 'could not record a deny in the audit log');
      // A deny the agent sees always has its record (G4); without one the answer is the outage.
      err = new GatewayError('PC_AUDIT_UNAVAILABLE', 'the decision could not be recorded; nothing was forwarded', ['audit log unavailable']);
    }
  }
  send(ctx, err, deps);
}

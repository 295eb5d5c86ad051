/** The per-call state that moves through the pipeline. Each stage fills in its part. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallFacts } from '../audit/call-records';
import type { ShadowVerdict } from '../audit/record';
import { recordedInput } from '../audit/recorded-input';
import type { ResponseSecrets } from '../credential-injector/injector';
import type { Attachment } from '../credential-injector/provider';
import type { AgentIdentity } from '../identity/identity-method';
import { mcpAuditView } from '../mcp/audit-view';
import type { McpCall } from '../mcp/message';
import type { Decision, PolicyInput } from '../policy/engine';
import type { CanonicalTarget } from './canonical-path';
import type { RouteRuntime } from './route-runtime';

/** One call. Fields are set by the stage named in their comment. */
export interface CallContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Decision id, returned to the agent in `x-portcullis-decision-id`. */
  readonly id: string;
  readonly startNs: bigint;
  /** RFC 3339 time the call arrived; the policy's `input.time`. */
  readonly time: string;
  /** identify: the agent's id (null: none presented), and all the identify stage learnt of it. */
  agent: string | null;
  identity: AgentIdentity | null;
  /** route */
  target: CanonicalTarget | null;
  route: RouteRuntime | null;
  relativePath: string | null;
  /** read-body */
  body: Buffer;
  /** decode: forwardable headers (credential headers removed) and the parsed JSON body. */
  headers: Record<string, string> | null;
  json: unknown;
  /** decode, MCP routes only: the one JSON-RPC message (or stream/termination) being judged. */
  mcp: McpCall | null;
  /** decode, MCP routes only: the session id, once checked to belong to this agent. */
  mcpSession: string | null;
  /** decide: what the policy was given (recorded in the decision record, recorded-input.ts). */
  policyInput: PolicyInput | null;
  /** decide */
  decision: Decision | null;
  policyRevision: string | null;
  /** decide: the shadow policy's verdict on the same input, when the route has a shadow policy. */
  shadow: ShadowVerdict | null;
  /** obtain-credential: the credential chosen for this call, ready to apply; null when the route attaches none. */
  attachment: Attachment | null;
  /** obtain-credential: the name (under credentials:) of the credential obtained. */
  credentialName: string | null;
  /** inject-credential: the upstream path and query, exactly as forwarded (and signed). */
  forwardPath: string | null;
  /** audit-decision: true once the decision record is durable. */
  audited: boolean;
  /** inject-credential: what the answer must not carry (the attached credential's values, a stdio server's secrets). */
  secrets: ResponseSecrets | null;
  /** forward (or the local reply after an allowed call failed): how the call ended, for its outcome record. */
  outcome: { readonly status: number; readonly code?: string } | null;
}

/** Starts a call's context. */
export function newContext(req: IncomingMessage, res: ServerResponse, id: string): CallContext {
  return {
    req,
    res,
    id,
    startNs: process.hrtime.bigint(),
    time: new Date().toISOString(),
    agent: null,
    identity: null,
    target: null,
    route: null,
    relativePath: null,
    body: EMPTY,
    headers: null,
    json: undefined,
    mcp: null,
    mcpSession: null,
    policyInput: null,
    decision: null,
    policyRevision: null,
    shadow: null,
    attachment: null,
    credentialName: null,
    forwardPath: null,
    audited: false,
    secrets: null,
    outcome: null,
  };
}

const EMPTY = Buffer.alloc(0);

/** Milliseconds since the call arrived, to 0.01 ms. */
export function elapsedMs(ctx: CallContext): number {
  return Math.round(Number(process.hrtime.bigint() - ctx.startNs) / 1e4) / 100;
}

/** What the call's decision record says of it (src/audit/call-records.ts). */
export function callFacts(ctx: CallContext): CallFacts {
  const mcp = ctx.mcp ? mcpAuditView(ctx.mcp, ctx.mcpSession, ctx.decision?.extra?.mask) : undefined;
  return {
    time: ctx.time,
    decisionId: ctx.id,
    agent: ctx.agent,
    onBehalfOf: ctx.identity?.on_behalf_of ?? null,
    route: ctx.route?.name ?? null,
    method: ctx.req.method ?? '',
    // What the agent asked for, the same in every record: the canonical target (route prefix
    // included, query as forwarded); for a target that could not be canonicalised, the raw one.
    path: ctx.target !== null ? ctx.target.path + (ctx.target.search ? `?${ctx.target.search}` : '') : (ctx.req.url ?? ''),
    body: ctx.body,
    policyRevision: ctx.policyRevision,
    ...(mcp ? { mcp } : {}),
    ...(ctx.policyInput !== null
      ? { input: recordedInput(ctx.policyInput, { auditBody: ctx.route?.auditBody === true, mask: ctx.decision?.extra?.mask, mcpView: mcp }) }
      : {}),
    ...(ctx.shadow !== null ? { shadow: ctx.shadow } : {}),
    ...(ctx.route?.mode === 'dry_run' ? { dryRun: true } : {}),
  };
}

/** What the policy sees of a call (docs/policy.md, docs/mcp.md), built from the call's context. */
import type { PolicyInput } from '../policy/engine';
import { queryObject } from './canonical-path';
import type { CallContext } from './context';

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

/**
 * `input.request.body` of a call: the parsed JSON body, except that a `tools/call`'s
 * `params.arguments` are given once, as `input.mcp.arguments`, and not again inside the body.
 * The message is serialised into the policy's memory and parsed there on every call; holding the
 * arguments twice made a 1 KB call's input 2.7 KB instead of 1.8 KB, 10 µs more per decision
 * on this VM (docs/benchmarks.md, "MCP call cost — 2026-12-04"). Everything else in the
 * message (`_meta`, a response's `result`, other methods' params) stays in the body.
 */
function bodyOf(ctx: CallContext): unknown {
  const json = ctx.json;
  if (ctx.mcp?.arguments == null) return json;
  const { params, ...message } = json as Record<string, unknown>;
  const { arguments: _given, ...rest } = params as Record<string, unknown>;
  return { ...message, params: rest };
}

/** The policy input of a routed, decoded call. */
export function policyInput(ctx: CallContext): PolicyInput {
  // spiffe_id and cert_sha256 are members for every method (null unless mtls).
  const id = ctx.identity;
  const agent = id && { ...id, spiffe_id: id.spiffe_id ?? null, cert_sha256: id.cert_sha256 ?? null };
  return {
    route: ctx.route!.name,
    agent,
    request: {
      method: ctx.req.method ?? 'GET',
      path: ctx.relativePath!,
      query: queryObject(ctx.target!.query),
      headers: ctx.headers!,
      ...(ctx.json !== undefined ? { body: bodyOf(ctx) } : {}),
    },
    time: ctx.time,
    ...(ctx.mcp ? { mcp: mcpInput(ctx) } : {}),
  };
}

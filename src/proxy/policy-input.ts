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
      ...(ctx.json !== undefined ? { body: ctx.json } : {}),
    },
    time: ctx.time,
    ...(ctx.mcp ? { mcp: mcpInput(ctx) } : {}),
  };
}

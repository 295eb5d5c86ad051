/**
 * The policy input as a decision record keeps it, for `portcullis policy replay`
 * (docs/policy-lifecycle.md, Replay): everything the policy saw, minus what must not or need not
 * be written twice, and the list of what was left out, so a replay can tell a decision it can
 * recompute from one that depended on something not recorded.
 *
 * - `request.body` of a REST call is left out unless the route sets `audit_body: true`; then it
 *   is kept with the policy's `mask` applied (pointers rooted at the body), and left out when
 *   its canonical JSON is longer than AUDIT_BODY_CAP.
 * - `request.body` of an MCP call (the JSON-RPC message, arguments unmasked) is always left out.
 * - `mcp.arguments` is not repeated: it is the record's `mcp.arguments` (masked, src/mcp/audit-view.ts);
 *   what that view masked or cut is listed as left out.
 *
 * `input_omitted` holds RFC 6901 pointers into `input`.
 */
import type { McpAuditView } from '../mcp/audit-view';
import { applyMask, maskListOf } from '../mcp/audit-view';
import type { PolicyInput } from '../policy/engine';
import { canonicalJson } from './canonical-json';

/** Longest canonical JSON of a recorded REST body, in characters. */
export const AUDIT_BODY_CAP = 4096;

/** What a decision record says of the policy input. */
export interface RecordedInput {
  readonly input: Record<string, unknown>;
  /** Pointers into `input` of what was not recorded; absent when nothing was left out. */
  readonly omitted?: readonly string[];
}

/** Options of recordedInput. */
export interface RecordedInputOptions {
  /** The route keeps REST bodies (`routes[].audit_body`). */
  readonly auditBody: boolean;
  /** The policy's `mask` (decision.extra.mask), or undefined. */
  readonly mask: unknown;
  /** The record's `mcp` member on an MCP route. */
  readonly mcpView?: McpAuditView;
}

/** The input a decision record keeps. `input` is the object the policy was given; it is not changed. */
export function recordedInput(input: PolicyInput, options: RecordedInputOptions): RecordedInput {
  const omitted: string[] = [];
  const { body, ...rest } = input.request;
  const request: Record<string, unknown> = rest;
  const kept: Record<string, unknown> = { ...input, request };
  if (body !== undefined) {
    const recorded = options.mcpView === undefined && options.auditBody ? recordedBody(body, options.mask, omitted) : undefined;
    if (recorded === undefined) omitted.push('/request/body');
    else request.body = recorded;
  }
  const view = options.mcpView;
  if (input.mcp !== undefined && view !== undefined) {
    const { arguments: args, ...mcp } = input.mcp as Record<string, unknown>;
    kept.mcp = mcp;
    if (args !== null && args !== undefined) {
      if (view.arguments === undefined) omitted.push('/mcp/arguments');
      else for (const p of view.masked ?? []) omitted.push(`/mcp${p}`);
    }
  }
  return omitted.length ? { input: kept, omitted } : { input: kept };
}

/** A REST body as recorded: masked, or undefined when it cannot be kept (a broken mask, too long). */
function recordedBody(body: unknown, mask: unknown, omitted: string[]): unknown {
  const pointers = maskListOf(mask);
  if (pointers === null) return undefined;
  let value = body;
  let masked: readonly string[] = [];
  if (pointers.length && body !== null && typeof body === 'object') {
    const done = applyMask(
      { body },
      pointers.map((p) => `/body${p}`),
    );
    value = done.value.body;
    masked = done.masked;
  }
  if (canonicalJson(value).length > AUDIT_BODY_CAP) return undefined;
  for (const p of masked) omitted.push(`/request${p}`);
  return value;
}

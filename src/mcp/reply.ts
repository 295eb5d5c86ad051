/**
 * How Portcullis answers an MCP client itself: always a JSON-RPC message, never an HTML page or
 * a bare status. A denied tools/call is answered HTTP 200 with a tool result `isError: true`
 * whose text carries the policy's reasons and the decision id, so the model can read it and
 * adapt; a route may choose a JSON-RPC error instead (`deny_as: error`). Other denied requests
 * get a JSON-RPC error -31001 with `data: {decision_id, code, reasons}`. Refusals of malformed
 * messages keep their HTTP status (400, 404, 405, …) with a JSON-RPC error body whose code the
 * table below maps from the Portcullis code.
 */
import type { GatewayError } from '../errors';
import type { McpCall } from './message';

/** JSON-RPC code of a policy deny: an application code, outside −32768…−32000. */
export const DENIED_CODE = -31001;

/** JSON-RPC error code for each refusal (default: −32600 for 4xx, −32603 for 5xx). */
const JSONRPC_CODE: Readonly<Partial<Record<string, number>>> = {
  PC_INVALID_JSON: -32700,
  PC_MCP_BAD_NAME: -32602,
  PC_MCP_HEADER_MISMATCH: -32020,
  PC_MCP_SESSION_NOT_FOUND: -32001,
  PC_MCP_METHOD_NOT_ALLOWED: -32601,
  PC_POLICY_DENIED: DENIED_CODE,
  PC_POLICY_ERROR: DENIED_CODE,
};

/** An answer: HTTP status and the JSON-RPC message to send. */
export interface McpReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** The text a model reads when its tool call is denied. */
export function denialText(reasons: readonly string[], decisionId: string): string {
  const why = reasons.length ? reasons.join('; ') : 'denied by policy';
  return `Portcullis denied this tool call: ${why}. Decision ${decisionId}.`;
}

/** The in-protocol answer to a refused MCP call. `call` is null when the message could not be read. */
export function mcpReply(err: GatewayError, call: McpCall | null, decisionId: string, denyAs: 'result' | 'error'): McpReply {
  const id = call?.id ?? null;
  const isPolicyDeny = err.code === 'PC_POLICY_DENIED' || err.code === 'PC_POLICY_ERROR';
  const isRequest = call?.kind === 'request';
  if (isPolicyDeny && isRequest && call.method === 'tools/call' && denyAs === 'result') {
    return {
      status: 200,
      body: {
        jsonrpc: '2.0',
        id,
        result: {
          content: [{ type: 'text', text: denialText(err.reasons, decisionId) }],
          isError: true,
          _meta: { 'portcullis/decision_id': decisionId, 'portcullis/code': err.code },
        },
      },
    };
  }
  const code = JSONRPC_CODE[err.code] ?? (err.status >= 500 ? -32603 : -32600);
  return {
    // A denied request is answered in the protocol (200); a denied notification, response,
    // stream or termination has no JSON-RPC reply to carry it, so it keeps the HTTP status.
    status: isPolicyDeny && isRequest ? 200 : err.status,
    body: {
      jsonrpc: '2.0',
      id,
      error: { code, message: err.message, data: { decision_id: decisionId, code: err.code, reasons: err.reasons } },
    },
  };
}

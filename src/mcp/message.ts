/**
 * One MCP message, as the gateway judges it. An MCP route has one endpoint: POST carries one
 * JSON-RPC 2.0 message, GET opens the server's event stream, DELETE ends a session. This module
 * turns the already strictly parsed body and the MCP headers into an `McpCall` — or refuses,
 * with a stable PC_MCP_* code, anything a server and the gateway could read differently:
 * batches, unknown members, ids of the wrong type, tool names outside the safe alphabet, and
 * mirrored headers (2026-07-28) that disagree with the body. Parse once, here; every later
 * stage (policy, audit, list filtering, sessions) reads the McpCall, never the raw body.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors';

/** What an MCP HTTP request is. */
export type McpKind = 'request' | 'notification' | 'response' | 'stream' | 'terminate';

/** A JSON-RPC id as MCP allows it: a string or an integer (never null). */
export type JsonRpcId = string | number;

/** The first protocol revision without sessions, where Mcp-Method and Mcp-Name are mandatory. */
export const STATELESS_ERA = '2026-07-28';

/** One judged MCP message. Fields a message kind does not have are null. */
export interface McpCall {
  readonly kind: McpKind;
  /** JSON-RPC method of a request or notification. */
  readonly method: string | null;
  readonly id: JsonRpcId | null;
  /** tools/call: the tool name and its arguments (an object, or null when absent). */
  readonly tool: string | null;
  readonly arguments: Record<string, unknown> | null;
  /** resources/read, resources/subscribe, resources/unsubscribe */
  readonly uri: string | null;
  /** prompts/get */
  readonly name: string | null;
  /** MCP-Protocol-Version header, or initialize's params.protocolVersion. */
  readonly protocolVersion: string | null;
  /** True when the protocol version is the stateless era (2026-07-28 or later). */
  readonly stateless: boolean;
  /** Mcp-Session-Id as presented (checked against the session table before the policy runs). */
  readonly sessionId: string | null;
  /** GET: Last-Event-ID, for resumption. */
  readonly lastEventId: string | null;
}

/** Tool names the gateway lets through: what the MCP spec recommends, and nothing a log or header could misread. */
export const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const METHOD_NAME = /^[A-Za-z0-9_./$-]{1,128}$/;
const SESSION_ID = /^[\x21-\x7e]{1,256}$/;
const PROTOCOL_VERSION = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/;

const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESPONSE_KEYS = new Set(['jsonrpc', 'id', 'result', 'error']);

function invalid(message: string): never {
  throw new GatewayError('PC_MCP_INVALID_MESSAGE', message);
}

function headerMismatch(message: string): never {
  throw new GatewayError('PC_MCP_HEADER_MISMATCH', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** One MCP header (repeats were already refused by the identify stage's singleton check). */
function header(headers: IncomingHttpHeaders, name: string): string | null {
  const v = headers[name];
  return typeof v === 'string' ? v : null;
}

function isId(v: unknown): v is JsonRpcId {
  return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));
}

function requiredString(params: Record<string, unknown> | null, key: string, method: string): string {
  const v = params?.[key];
  if (typeof v !== 'string' || v.length === 0) invalid(`${method} needs params.${key} as a non-empty string`);
  return v;
}

/** Methods whose target the 2026-07-28 era mirrors in Mcp-Name, and where it sits in params. */
const NAMED: Readonly<Record<string, 'name' | 'uri'>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'resources/subscribe': 'uri',
  'resources/unsubscribe': 'uri',
};

interface Target {
  tool: string | null;
  arguments: Record<string, unknown> | null;
  uri: string | null;
  name: string | null;
}

function targetOf(method: string, params: Record<string, unknown> | null): Target {
  const t: Target = { tool: null, arguments: null, uri: null, name: null };
  switch (NAMED[method]) {
    case 'name': {
      const name = requiredString(params, 'name', method);
      if (method === 'tools/call') {
        if (!TOOL_NAME.test(name)) throw new GatewayError('PC_MCP_BAD_NAME', 'the tool name must match [A-Za-z0-9_.-]{1,128}');
        const args = params?.arguments;
        if (args !== undefined && !isObject(args)) invalid('tools/call params.arguments must be an object');
        t.tool = name;
        t.arguments = (args as Record<string, unknown> | undefined) ?? null;
      } else {
        t.name = name;
      }
      break;
    }
    case 'uri':
      t.uri = requiredString(params, 'uri', method);
      break;
  }
  return t;
}

/** The protocol version a POST speaks: the header, or what initialize asks for. */
function versionOf(headers: IncomingHttpHeaders, method: string | null, params: Record<string, unknown> | null): string | null {
  const h = header(headers, 'mcp-protocol-version');
  if (h !== null) {
    if (!PROTOCOL_VERSION.test(h)) headerMismatch('MCP-Protocol-Version must be a date such as 2025-11-25');
    return h;
  }
  const asked = method === 'initialize' ? params?.protocolVersion : undefined;
  return typeof asked === 'string' && PROTOCOL_VERSION.test(asked) ? asked : null;
}

/**
 * Checks the mirrored headers: required in the stateless era, and when present in any era they
 * must equal the body (an intermediary that routes or rate-limits on them would otherwise judge
 * a different call from the one the server runs).
 */
function checkMirroredHeaders(headers: IncomingHttpHeaders, stateless: boolean, method: string, target: Target): void {
  const hMethod = header(headers, 'mcp-method');
  if (hMethod === null) {
    if (stateless) headerMismatch('the Mcp-Method header is required with MCP-Protocol-Version 2026-07-28');
  } else if (hMethod !== method) {
    headerMismatch('the Mcp-Method header does not match the method in the body');
  }
  const bodyName = target.tool ?? target.name ?? target.uri;
  const hName = header(headers, 'mcp-name');
  if (hName === null) {
    if (stateless && bodyName !== null) headerMismatch(`the Mcp-Name header is required for ${method} with MCP-Protocol-Version 2026-07-28`);
  } else if (bodyName === null || hName !== bodyName) {
    headerMismatch('the Mcp-Name header does not match the name or uri in the body');
  }
}

function sessionOf(headers: IncomingHttpHeaders): string | null {
  const s = header(headers, 'mcp-session-id');
  if (s !== null && !SESSION_ID.test(s)) invalid('Mcp-Session-Id must be 1 to 256 visible ASCII characters');
  return s;
}

/**
 * Reads one MCP message from a request on an MCP route. `json` is the body as the strict JSON
 * parser returned it (undefined when there was no JSON body). Throws GatewayError.
 */
export function parseMcpCall(httpMethod: string, headers: IncomingHttpHeaders, json: unknown, hasBody: boolean): McpCall {
  const sessionId = sessionOf(headers);
  if (httpMethod === 'GET' || httpMethod === 'DELETE') {
    if (hasBody) invalid(`an MCP ${httpMethod} carries no body`);
    const lastEventId = httpMethod === 'GET' ? header(headers, 'last-event-id') : null;
    return methodless(httpMethod === 'GET' ? 'stream' : 'terminate', null, headers, sessionId, lastEventId);
  }
  if (httpMethod !== 'POST') throw new GatewayError('PC_MCP_METHOD_NOT_ALLOWED', 'an MCP endpoint takes POST, GET and DELETE');
  if (json === undefined) invalid('an MCP POST carries one JSON-RPC message with Content-Type application/json');
  if (Array.isArray(json)) throw new GatewayError('PC_MCP_BATCH', 'JSON-RPC batches are not accepted: send one message per request');
  if (!isObject(json)) invalid('the body is not a JSON-RPC message object');
  if (json.jsonrpc !== '2.0') invalid('jsonrpc must be "2.0"');

  if ('method' in json) {
    for (const k in json) if (!REQUEST_KEYS.has(k)) invalid(`unexpected member "${k}" in a JSON-RPC request`);
    const method = json.method;
    if (typeof method !== 'string' || !METHOD_NAME.test(method)) invalid('method must be a name of 1 to 128 characters [A-Za-z0-9_./$-]');
    const hasId = 'id' in json;
    if (hasId && !isId(json.id)) invalid('id must be a string or an integer');
    const params = json.params;
    if (params !== undefined && !isObject(params)) invalid('params must be an object');
    const p = (params as Record<string, unknown> | undefined) ?? null;
    const target = targetOf(method, p);
    const protocolVersion = versionOf(headers, method, p);
    const stateless = protocolVersion !== null && protocolVersion >= STATELESS_ERA;
    checkMirroredHeaders(headers, stateless, method, target);
    return {
      kind: hasId ? 'request' : 'notification',
      method,
      id: hasId ? (json.id as JsonRpcId) : null,
      ...target,
      protocolVersion,
      stateless,
      sessionId,
      lastEventId: null,
    };
  }

  // A response: the client answering a server's request (sampling, elicitation, roots).
  for (const k in json) if (!RESPONSE_KEYS.has(k)) invalid(`unexpected member "${k}" in a JSON-RPC response`);
  if (!isId(json.id)) invalid('a JSON-RPC response needs an id that is a string or an integer');
  if ('result' in json === 'error' in json) invalid('a JSON-RPC response has exactly one of result and error');
  if ('error' in json && !(isObject(json.error) && Number.isInteger(json.error.code) && typeof json.error.message === 'string')) {
    invalid('a JSON-RPC error needs an integer code and a string message');
  }
  return methodless('response', json.id, headers, sessionId, null);
}

/** A call without a method: a stream (GET), a termination (DELETE) or a client response. */
function methodless(kind: McpKind, id: JsonRpcId | null, headers: IncomingHttpHeaders, sessionId: string | null, lastEventId: string | null): McpCall {
  const protocolVersion = versionOf(headers, null, null);
  return {
    kind,
    method: null,
    id,
    tool: null,
    arguments: null,
    uri: null,
    name: null,
    protocolVersion,
    stateless: protocolVersion !== null && protocolVersion >= STATELESS_ERA,
    sessionId,
    lastEventId,
  };
}

/**
 * Header rules, in one place: which request headers must be unique, which are hop-by-hop,
 * which carry credentials (never shown to the policy, never forwarded from the agent).
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors';

/** Headers that must appear at most once; Node would silently keep one of the copies. */
const SINGLETON = [
  'authorization',
  'host',
  'content-type',
  'content-length',
  'proxy-authorization',
  // MCP: the gateway judges one value; a server could read another copy.
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'last-event-id',
];

/** RFC 9110 §7.6.1 hop-by-hop headers, plus legacy ones. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

/** Headers from the agent that carry credentials. */
const AGENT_CREDENTIAL = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** Headers the gateway sets itself on the upstream request. */
const GATEWAY_SET = new Set(['host', 'content-length', 'expect', 'accept-encoding', 'x-portcullis-decision-id']);

/** Throws PC_DUPLICATE_HEADER when a singleton header is repeated. */
export function assertSingletonHeaders(req: IncomingMessage): void {
  const raw = req.rawHeaders;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const idx = SINGLETON.indexOf(raw[i].toLowerCase());
    if (idx === -1) continue;
    const bit = 1 << idx;
    if (seen & bit) throw new GatewayError('PC_DUPLICATE_HEADER', `the ${SINGLETON[idx]} header appears more than once`);
    seen |= bit;
  }
}

function connectionTokens(headers: IncomingHttpHeaders): Set<string> | null {
  const c = headers.connection;
  if (!c) return null;
  return new Set(c.toLowerCase().split(',').map((t) => t.trim()));
}

/**
 * The headers forwarded upstream and shown to the policy: lower-cased, without hop-by-hop,
 * agent credentials, the route's credential header, or headers the gateway sets itself.
 */
export function forwardableRequestHeaders(headers: IncomingHttpHeaders, credentialHeader: string | null): Record<string, string> {
  const listed = connectionTokens(headers);
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || AGENT_CREDENTIAL.has(name) || GATEWAY_SET.has(name) || name === credentialHeader) continue;
    if (listed?.has(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** Response headers passed to the agent: hop-by-hop removed. */
export function forwardableResponseHeaders(headers: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const c = headers.connection;
  const listed = typeof c === 'string' ? new Set(c.toLowerCase().split(',').map((t) => t.trim())) : null;
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** True when a content type is JSON (application/json or any +json type). */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const semi = contentType.indexOf(';');
  const mime = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return mime === 'application/json' || mime.endsWith('+json');
}

/**
 * Header rules, in one place: which request headers must be unique, which are hop-by-hop,
 * which carry credentials (never shown to the policy, never forwarded from the agent), which
 * would let the agent speak for a proxy (X-Forwarded-*, Forwarded, X-Original-URL, ...), and
 * when Range is withheld. Names are compared as stacks that treat `_` like `-` read them (CGI,
 * WSGI, PHP, nginx with underscores_in_headers): `X_Api_Key` is the credential header too.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/types';
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
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]);

/** Headers from the agent that carry credentials. */
const AGENT_CREDENTIAL = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** Headers the gateway sets itself on the upstream request. */
const GATEWAY_SET = new Set(['host', 'content-length', 'expect', 'accept-encoding', 'x-portcullis-decision-id']);

/**
 * Headers by which a client speaks for a proxy in front of the upstream: who the client is,
 * which host and scheme it used, which URL it "really" asked for (X-Original-URL and
 * X-Rewrite-URL make some frameworks route to another path than the one judged). The agent's
 * are dropped; the gateway sends its own (PROXY_OWN). Any `x-forwarded-*` is included.
 */
const PROXY = new Set([
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-original-host',
  'x-host',
  'x-http-host-override',
]);

/** The gateway's own proxy headers (docs/forwarding.md). */
const PROXY_OWN = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'] as const;

/** Withheld unless the route forwards ranges (RouteConfig.forwardRange). */
const RANGE = new Set(['range', 'if-range']);

/** A lower-cased header name as stacks that treat `_` like `-` read it. */
export function normalisedHeaderName(name: string): string {
  return name.includes('_') ? name.replace(/_/g, '-') : name;
}

function isProxyHeader(name: string): boolean {
  return PROXY.has(name) || name.startsWith('x-forwarded-');
}

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
  return new Set(
    c
      .toLowerCase()
      .split(',')
      .map((t) => t.trim()),
  );
}

/** Where the call came from, as the gateway itself saw it. */
export interface ClientView {
  /** The agent's socket address. */
  readonly address: string | undefined;
  /** The Host header the agent sent. */
  readonly host: string | undefined;
  /** The agent's connection is TLS (the agent listener's tls:). */
  readonly tls?: boolean;
}

/** The client view of a request: its socket's address and its Host header. */
export function clientOf(req: IncomingMessage): ClientView {
  return { address: req.socket.remoteAddress, host: req.headers.host, tls: (req.socket as { encrypted?: boolean }).encrypted === true };
}

/** True when a (normalised) name starts with one of the route's credential prefixes (`x-amz-` for SigV4). */
function hasCredentialPrefix(name: string, prefixes: readonly string[]): boolean {
  for (const p of prefixes) if (name.startsWith(p)) return true;
  return false;
}

/**
 * The headers forwarded upstream and shown to the policy: lower-cased, without hop-by-hop,
 * agent credentials, the route's credential header (and any header under its credential
 * prefixes: a SigV4 route's `x-amz-*`, which the signature covers), headers the gateway sets itself, the
 * agent's proxy headers, or (unless the route forwards ranges) Range and If-Range — each
 * also under its `_` lookalike name. The gateway's own X-Forwarded-For/-Proto/-Host are added.
 */
export function forwardableRequestHeaders(headers: IncomingHttpHeaders, route: RouteConfig, client: ClientView): Record<string, string> {
  const credentialHeaders = route.credentialHeaders;
  const prefixes = route.credentialHeaderPrefixes;
  const listed = connectionTokens(headers);
  const out: Record<string, string> = {};
  for (const name in headers) {
    const n = normalisedHeaderName(name);
    if (HOP_BY_HOP.has(n) || AGENT_CREDENTIAL.has(n) || GATEWAY_SET.has(n) || credentialHeaders.includes(n) || isProxyHeader(n)) continue;
    if (prefixes.length > 0 && hasCredentialPrefix(n, prefixes)) continue;
    if (!route.forwardRange && RANGE.has(n)) continue;
    if (listed !== null && (listed.has(name) || listed.has(n))) continue;
    const v = headers[name];
    if (v === undefined) continue;
    out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  if (client.address !== undefined) out[PROXY_OWN[0]] = client.address;
  // https when the agent listener serves TLS itself (tls:); http otherwise (TLS, if any, ends in front of it).
  out[PROXY_OWN[1]] = client.tls === true ? 'https' : 'http';
  if (client.host !== undefined) out[PROXY_OWN[2]] = client.host;
  return out;
}

/**
 * The query side of the credential prefixes: on a SigV4 route, a parameter named `X-Amz-*`
 * (`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`: presigned-URL authentication)
 * would put the agent's words into the request the gateway signs. A header can be dropped; a
 * query parameter cannot without changing the target the policy judges, so the call is refused
 * (PC_BAD_REQUEST) before the policy sees it.
 */
export function assertNoCredentialQuery(query: ReadonlyArray<readonly [string, string]>, route: RouteConfig): void {
  const prefixes = route.credentialHeaderPrefixes;
  if (prefixes.length === 0) return;
  for (const [name] of query) {
    const n = normalisedHeaderName(name.toLowerCase());
    if (hasCredentialPrefix(n, prefixes))
      throw new GatewayError('PC_BAD_REQUEST', `the query parameter ${JSON.stringify(name.slice(0, 64))} is the gateway's to set on this route`, [
        "the route's credential signs the call; X-Amz-* query parameters (presigned-URL authentication) are refused",
      ]);
  }
}

/** Response headers passed to the agent: hop-by-hop removed. */
export function forwardableResponseHeaders(headers: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const c = headers.connection;
  const listed =
    typeof c === 'string'
      ? new Set(
          c
            .toLowerCase()
            .split(',')
            .map((t) => t.trim()),
        )
      : null;
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

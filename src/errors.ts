/**
 * Public error codes. Every refusal Portcullis sends on the wire carries one of these codes;
 * they are stable (never reused or renamed) and documented in docs/errors.md, which a test
 * keeps in step with this table.
 */

/** The catalogue: code → HTTP status and a one-line meaning (the meaning is also documentation). */
export const ERROR_CODES = {
  PC_BAD_REQUEST: { status: 400, meaning: 'The request is malformed in a way not covered by a more specific code.' },
  PC_BAD_PATH: {
    status: 400,
    meaning:
      'The path is ambiguous or unsafe: dot segments, empty segments, encoded slashes or backslashes, double encoding, `;` path parameters, a fragment, control characters, or percent-escapes that are not valid UTF-8 in NFC and NFKC form (the query: not valid UTF-8).',
  },
  PC_BAD_HTTP: {
    status: 400,
    meaning:
      'The HTTP parser refused the request (Content-Length with Transfer-Encoding, an unknown or obfuscated Transfer-Encoding, obs-fold, bare LF, a bad chunk, a malformed request line), or it is a CONNECT or an HTTP/0.9 request. Answered with connection: close and audited without an agent or route.',
  },
  PC_HEADERS_TOO_LARGE: {
    status: 431,
    meaning: 'The request line and headers exceed 16 KiB. Answered with connection: close and audited without an agent or route.',
  },
  PC_METHOD_OVERRIDE: {
    status: 400,
    meaning:
      'The request names another method than its own (X-HTTP-Method-Override, X-Method-Override, X-HTTP-Method, a `_method` query parameter or form field); upstreams that honour it would run a method the policy did not judge.',
  },
  PC_DUPLICATE_HEADER: {
    status: 400,
    meaning:
      'A header that must appear once (Authorization, Host, Origin, Content-Type, Content-Length, and the MCP headers Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID) appears more than once.',
  },
  PC_BAD_AUTHORIZATION: { status: 401, meaning: 'The Authorization header is not of the form `Bearer <key>`.' },
  PC_UNKNOWN_AGENT: {
    status: 401,
    meaning:
      'The presented credential is recognised by no identity method the route accepts: an agent key no agent has, or a token on a route whose identity.methods leave out jwt. Answered with WWW-Authenticate: Bearer error="invalid_token".',
  },
  PC_CLIENT_CERT_REQUIRED: {
    status: 401,
    meaning:
      'identity.mtls with tls.client_auth optional: the connection presented a client certificate that does not verify against tls.client_ca, or whose SPIFFE ID is not acceptable (not exactly one spiffe:// URI SAN, another trust domain).',
  },
  PC_TOKEN_INVALID: {
    status: 401,
    meaning:
      'The bearer token is a JWT but is not accepted: bad signature, an algorithm outside identity.jwt.algorithms (none, HS*), a key the issuer does not publish, another issuer, not valid yet, a missing required or agent claim, larger than 8 KiB, sent in the query string, or the issuer\'s keys could not be fetched. Answered with WWW-Authenticate: Bearer error="invalid_token".',
  },
  PC_TOKEN_REQUIRED: {
    status: 401,
    meaning:
      'The route requires a credential (routes[].identity.required, by default identity.jwt.required) and the call presented no Authorization. Answered with WWW-Authenticate: Bearer (on an MCP route with resource_metadata naming its Protected Resource Metadata, RFC 9728), so an MCP client can discover the authorization server.',
  },
  PC_TOKEN_EXPIRED: {
    status: 401,
    meaning: 'The bearer token has expired (exp, allowing identity.jwt.clock_skew_s). Answered with WWW-Authenticate: Bearer error="invalid_token".',
  },
  PC_TOKEN_AUDIENCE: {
    status: 401,
    meaning:
      'The bearer token was issued for another audience than identity.jwt.audience (on an MCP route: than identity.jwt.audience or the route\'s own resource URL, RFC 8707). Answered with WWW-Authenticate: Bearer error="invalid_token".',
  },
  PC_INSUFFICIENT_SCOPE: {
    status: 403,
    meaning:
      'The bearer token is valid but lacks a scope the route requires (routes[].identity.required_scopes, by default identity.jwt.required_scopes). Answered with WWW-Authenticate: Bearer error="insufficient_scope" and the scopes needed.',
  },
  PC_BAD_HOST: {
    status: 403,
    meaning:
      'The Host header is missing, repeated, malformed, or not one this listener answers to (allowed_hosts; by default its own address and the loopback names with its port): a DNS-rebinding request. Proxy headers never stand in for Host.',
  },
  PC_BAD_ORIGIN: {
    status: 403,
    meaning:
      'The request carries an Origin header that is not allowed on this listener (allowed_origins; by default http:// and an allowed Host): a web page of another site.',
  },
  PC_POLICY_DENIED: { status: 403, meaning: 'The policy denied the call; the reasons are in the body and the audit record.' },
  PC_POLICY_ERROR: { status: 403, meaning: 'The policy could not decide (undefined result, wrong type, runtime error, no policy loaded); the call is denied.' },
  PC_ROUTE_NOT_FOUND: { status: 404, meaning: 'No route prefix matches the path.' },
  PC_BODY_TOO_LARGE: { status: 413, meaning: 'The request body exceeds `limits.max_body_bytes`.' },
  PC_UNSUPPORTED_ENCODING: {
    status: 415,
    meaning: 'The request body is compressed (Content-Encoding); the policy must judge the bytes forwarded, so encoded bodies are refused.',
  },
  PC_INVALID_JSON: {
    status: 400,
    meaning:
      'The body is declared JSON but is not valid UTF-8 JSON: a byte order mark, a lone surrogate escape, bad grammar, or nesting deeper than 128 levels.',
  },
  PC_DUPLICATE_JSON_KEY: { status: 400, meaning: 'A JSON object in the body repeats a key; parsers disagree on which one wins, so the body is refused.' },
  PC_UNSAFE_JSON_NUMBER: {
    status: 400,
    meaning:
      'A JSON number in the body is not exactly the double it parses to: an integer outside ±(2^53−1), or a fraction or exponent form whose decimal value differs from the shortest form of its double (too many digits, underflow). The policy would see a rounded value, so the body is refused.',
  },
  PC_MCP_INVALID_MESSAGE: {
    status: 400,
    meaning:
      'On an MCP route: the body is not one JSON-RPC 2.0 request, notification or response of the shape MCP allows (JSON-RPC error -32600, or -32602 for bad params).',
  },
  PC_MCP_BATCH: {
    status: 400,
    meaning: 'On an MCP route: the body is a JSON-RPC batch (an array). MCP removed batching in 2025-06-18; every batch is refused (JSON-RPC error -32600).',
  },
  PC_MCP_BAD_NAME: { status: 400, meaning: 'On an MCP route: a tools/call names a tool outside `[A-Za-z0-9_.-]{1,128}` (JSON-RPC error -32602).' },
  PC_MCP_HEADER_MISMATCH: {
    status: 400,
    meaning:
      'On an MCP route: `Mcp-Method`, `Mcp-Name` or `MCP-Protocol-Version` is missing where required, or disagrees with the body (JSON-RPC error -32020).',
  },
  PC_MCP_SESSION_NOT_FOUND: {
    status: 404,
    meaning:
      'On an MCP route: the `Mcp-Session-Id` is not a live session this gateway saw created, or it belongs to another agent. Start a new session (JSON-RPC error -32001).',
  },
  PC_MCP_METHOD_NOT_ALLOWED: { status: 405, meaning: 'On an MCP route: an HTTP method other than POST, GET and DELETE (JSON-RPC error -32601).' },
  PC_AUDIT_UNAVAILABLE: { status: 503, meaning: 'The decision could not be written durably to the audit log; nothing was forwarded.' },
  PC_OVERLOADED: {
    status: 503,
    meaning:
      'The gateway is short of memory (heap or container limit) and refuses new calls until it recovers; nothing was forwarded. Retry after the `retry-after` delay.',
  },
  PC_CREDENTIAL_UNAVAILABLE: {
    status: 503,
    meaning:
      "The call was allowed but the upstream credential the decision chose could not be obtained (a token endpoint down, slow or refusing; a secret file unreadable); nothing was forwarded. The endpoint's answer goes to the log, never to the agent.",
  },
  PC_SHUTTING_DOWN: { status: 503, meaning: 'The gateway is draining and accepts no new calls.' },
  PC_INTERNAL_ERROR: {
    status: 500,
    meaning:
      'The gateway failed in a way it did not expect (a bug); the call was denied and nothing was forwarded. The log has the stack under the decision id.',
  },
  PC_UPSTREAM_UNAVAILABLE: { status: 502, meaning: 'The upstream refused the connection, reset it, or answered with an invalid response.' },
  PC_UPSTREAM_BAD_ENCODING: {
    status: 502,
    meaning:
      'On a route with a credential, or an MCP route: the upstream answered with a Content-Encoding the gateway cannot decode (anything but gzip, deflate, br, zstd; stacked or repeated codings) or a Transfer-Encoding other than chunked, so the answer could not be checked for the credential; nothing of it was sent.',
  },
  PC_UPSTREAM_TIMEOUT: { status: 504, meaning: 'The upstream did not connect or send response headers in time.' },
} as const;

/**
 * Outcome codes: why an allowed call's answer, once begun, was cut off. They appear only in
 * outcome records (never on the wire) and are listed in docs/errors.md, which a test keeps in
 * step with this list.
 */
export const OUTCOME_CODES = [
  'client_closed',
  'upstream_stream_error',
  'upstream_timeout',
  'upstream_decode_limit',
  'upstream_decode_error',
  'mask_hold_overflow',
  'mcp_list_too_large',
  'mcp_list_invalid_json',
  'mcp_list_filter_failed',
] as const;

/** An outcome code. */
export type OutcomeCode = (typeof OUTCOME_CODES)[number];

/** True for the outcome codes (a stream error's `code`, when it names one). */
export function isOutcomeCode(code: unknown): code is OutcomeCode {
  return typeof code === 'string' && (OUTCOME_CODES as readonly string[]).includes(code);
}

/** A public error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An error that becomes an answer to the agent. Its `message` is public: it must never contain
 * a secret. Internal faults are wrapped into one of these at the stage that catches them.
 */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Reasons for the audit record and the response (policy reasons for a deny). */
  readonly reasons: readonly string[];

  constructor(code: ErrorCode, message: string, reasons?: readonly string[]) {
    super(message);
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.reasons = reasons ?? [message];
  }
}

/**
 * Configuration error codes: why portcullis.yaml was refused before anything started. They are
 * printed with each ConfigError (never on the wire), stable, and listed in docs/errors.md, which
 * a test keeps in step with this table.
 */
export const CONFIG_CODES = {
  CONFIG_FILE_UNREADABLE: 'The configuration file cannot be read.',
  CONFIG_YAML_SYNTAX: 'The file is not valid YAML (or holds more than one document).',
  CONFIG_YAML_ALIAS: 'The file uses a YAML alias (`*name`); aliases are refused.',
  CONFIG_DUPLICATE_KEY: 'A mapping repeats a key.',
  CONFIG_UNKNOWN_KEY: 'A key the schema does not know (a renamed key names its replacement).',
  CONFIG_MISSING_KEY: 'A required key is missing.',
  CONFIG_TYPE: 'A value has the wrong type (a string where a number belongs, …).',
  CONFIG_RANGE: 'A number, a port, a length or a count is out of its range.',
  CONFIG_FORMAT: 'A string does not have the required form (host:port, a path prefix, a name, a hex digest, an http(s) URL).',
  CONFIG_ENUM: 'A value is not one of the allowed choices.',
  CONFIG_URL: 'A URL cannot be parsed, embeds credentials, or has a query or fragment.',
  CONFIG_CONFLICT: 'Keys that do not go together (upstream with command, a key of another route kind, two sources for one secret, …).',
  CONFIG_VALUE: 'A value the gateway refuses to use there (a header it sets itself, …).',
  CONFIG_DUPLICATE_NAME: 'Two routes, sinks or agents share a name, or two agents share a key.',
  CONFIG_DUPLICATE_PREFIX: 'Two routes share a path prefix.',
  CONFIG_UNKNOWN_CREDENTIAL: 'A route names a credential that is not defined.',
  CONFIG_MISSING_ENV: 'The environment variable a secret is read from is not set, or is empty.',
  CONFIG_SECRET_FILE: 'The file a secret is read from cannot be read, is empty, or holds more than one line.',
  CONFIG_PATH: 'A file or directory the configuration names does not exist or is not what it should be.',
  CONFIG_SIGNING_KEY: '`audit.signing_key` does not hold a usable signer key.',
  CONFIG_STDIO_COMMAND: "A stdio MCP server's command cannot be run.",
  CONFIG_RESTART_REQUIRED: 'A reload changes a part of the configuration that only a restart can change.',
} as const;

/** A configuration error code. */
export type ConfigCode = keyof typeof CONFIG_CODES;

/** Where a configuration problem is: the file, the key path, and its line and column (1-based) when known. */
export interface ConfigLocation {
  readonly file: string;
  /** e.g. `routes[1].prefix`; empty for the whole file. */
  readonly keyPath: string;
  readonly line?: number;
  readonly column?: number;
}

/**
 * A configuration problem, reported before the gateway starts as
 * `file:line:column: key.path: problem [CODE]`. `problem` shows the offending value and what
 * was expected, but never a value under a credential or secret.
 */
export class ConfigError extends Error {
  readonly code: ConfigCode;
  readonly file: string;
  readonly keyPath: string;
  readonly line: number | null;
  readonly column: number | null;
  readonly problem: string;

  constructor(code: ConfigCode, where: ConfigLocation, problem: string) {
    const at = where.line ? `:${where.line}${where.column ? `:${where.column}` : ''}` : '';
    super(`${where.file}${at}: ${where.keyPath || '(root)'}: ${problem} [${code}]`);
    this.name = 'ConfigError';
    this.code = code;
    this.file = where.file;
    this.keyPath = where.keyPath;
    this.line = where.line ?? null;
    this.column = where.column ?? null;
    this.problem = problem;
  }
}

/** The policy failed to compile or load. `detail` is OPA's own message. */
export class PolicyBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyBuildError';
  }
}

/**
 * Turns anything thrown (opa-wasm throws plain strings and objects) into an Error whose message
 * is safe to log.
 */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(JSON.stringify(thrown));
  } catch {
    return new Error(String(thrown));
  }
}

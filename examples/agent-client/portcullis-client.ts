/**
 * A dependency-free client for calling tools through Portcullis, meant to be copied into an
 * agent. The agent holds only its agent key: it names the agent to Portcullis and is worthless
 * anywhere else. Portcullis decides each call, attaches the upstream credential on allow and
 * audits the decision; this client turns its refusals into a typed {@link PortcullisDenied}
 * whose reasons an LLM tool wrapper can hand back to the model.
 *
 * Needs Node >= 22 (global fetch); nothing here imports Portcullis itself.
 */

/** The header carrying the id of the audit record for the call, on every Portcullis answer. */
export const DECISION_ID_HEADER = 'x-portcullis-decision-id';

/** A JSON query value; arrays become repeated parameters (`?tag=a&tag=b`). */
export type QueryValue = string | number | boolean | readonly (string | number | boolean)[];

/** Options of one call. */
export interface CallOptions {
  /** HTTP method; default GET. */
  readonly method?: string;
  /** Query parameters; undefined values are left out. */
  readonly query?: Readonly<Record<string, QueryValue | undefined>>;
  /** Sent as JSON (`content-type: application/json`), so the policy can read it as `input.request.body`. */
  readonly body?: unknown;
  /** Extra request headers. `authorization` cannot be overridden: it always carries the agent key. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Cancels the call (e.g. `AbortSignal.timeout(30_000)`). */
  readonly signal?: AbortSignal;
}

/** An answer relayed from the upstream tool (any status, including the tool's own errors). */
export interface CallResult<T = unknown> {
  /** True for a 2xx status. */
  readonly ok: boolean;
  readonly status: number;
  /** The audit record of this call: quote it when asking why something happened. */
  readonly decisionId: string;
  /** Parsed JSON when the tool answered JSON, otherwise the body as text ('' when empty). */
  readonly data: T;
}

/** Codes whose refusal is about this moment, not this call: the same call may succeed later. */
const RETRYABLE = new Set(['PC_AUDIT_UNAVAILABLE', 'PC_SHUTTING_DOWN', 'PC_UPSTREAM_UNAVAILABLE', 'PC_UPSTREAM_TIMEOUT']);

/**
 * Portcullis answered the call itself instead of relaying the tool's answer: the policy denied
 * it, the request was malformed, the agent is unknown, or (after an allow) the upstream failed.
 * `code` is one of Portcullis's stable `PC_*` codes; `reasons` are the policy's reasons for a
 * policy deny, or a one-line explanation otherwise.
 */
export class PortcullisDenied extends Error {
  readonly code: string;
  readonly status: number;
  readonly reasons: readonly string[];
  readonly decisionId: string;

  constructor(code: string, status: number, message: string, reasons: readonly string[], decisionId: string) {
    super(`${code}: ${message}${reasons.length ? ` (${reasons.join('; ')})` : ''}`);
    this.name = 'PortcullisDenied';
    this.code = code;
    this.status = status;
    this.reasons = reasons;
    this.decisionId = decisionId;
  }

  /** True when retrying the identical call later may succeed (audit outage, drain, upstream down). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  /**
   * A tool result for the model: what was refused and why, phrased so the model changes its
   * plan rather than retrying the same call (unless the refusal is retryable).
   */
  forModel(): string {
    const why = this.reasons.length ? this.reasons.join('; ') : this.message;
    const next = this.retryable ? 'This is temporary; the same call may succeed later.' : 'Do not retry the same call; change the request or ask a human.';
    return `The call was refused by the gateway (${this.code}): ${why}. ${next} Decision id: ${this.decisionId}.`;
  }
}

/** Connection settings: the sidecar's URL and this agent's key. */
export interface PortcullisClientOptions {
  /** Portcullis's agent listener, e.g. http://127.0.0.1:8080 (the pod's localhost). */
  readonly baseUrl: string;
  /** This agent's key; sent only to `baseUrl`. */
  readonly agentKey: string;
}

/** Calls tools through Portcullis. One instance per agent identity; safe for concurrent calls. */
export class PortcullisClient {
  readonly #base: URL;
  readonly #authorization: string;

  constructor(options: PortcullisClientOptions) {
    const base = new URL(options.baseUrl);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`baseUrl must be http(s), got ${base.protocol}`);
    if (base.search || base.hash || base.username) throw new TypeError('baseUrl must not carry a query, fragment or credentials');
    // Portcullis accepts printable ASCII without spaces; failing here beats a PC_BAD_AUTHORIZATION per call.
    if (!/^[\x21-\x7e]{1,4096}$/.test(options.agentKey)) throw new TypeError('agentKey must be 1-4096 printable ASCII characters without spaces');
    this.#base = new URL(base.pathname.endsWith('/') ? base.href : `${base.href}/`);
    // A private field, so neither JSON.stringify nor util.inspect of the client shows the key.
    this.#authorization = `Bearer ${options.agentKey}`;
  }

  /**
   * Calls `path` on the route whose prefix is `/<route>/` (e.g. `call('tools', '/tickets')`).
   * Resolves with the tool's answer, whatever its status; rejects with {@link PortcullisDenied}
   * when Portcullis refused or failed the call, and with a TypeError for a path the gateway
   * would refuse anyway or that the URL parser would silently rewrite.
   */
  async call<T = unknown>(route: string, path: string, options: CallOptions = {}): Promise<CallResult<T>> {
    const url = this.#url(route, path, options.query);
    const headers: Record<string, string> = { accept: 'application/json', ...lowerCaseKeys(options.headers) };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    headers.authorization = this.#authorization; // last, so a caller's header cannot replace the key
    const res = await fetch(url, {
      method: options.method ?? 'GET',
      headers,
      body,
      signal: options.signal,
      // An upstream's redirect could point the agent straight at the tool, around the gateway
      // (and its audit). Hand redirects back to the caller instead of following them.
      redirect: 'manual',
    });
    const decisionId = res.headers.get(DECISION_ID_HEADER);
    const text = await res.text();
    // Every Portcullis answer carries a decision id; without one, baseUrl is not Portcullis
    // (and the agent key has just been sent to something else, which the operator must hear).
    if (decisionId === null) throw new Error(`no ${DECISION_ID_HEADER} header in the answer from ${url.origin}: is baseUrl the Portcullis agent listener?`);
    const data = isJson(res.headers.get('content-type')) && text !== '' ? parseJson(text) : text;
    const refusal = res.ok ? null : refusalOf(data);
    // The id from the header, not the body: Portcullis overwrites the header on every answer,
    // while a body relayed from the upstream could say anything.
    if (refusal) throw new PortcullisDenied(refusal.code, res.status, refusal.message, refusal.reasons, decisionId);
    return { ok: res.ok, status: res.status, decisionId, data: data as T };
  }

  #url(route: string, path: string, query: CallOptions['query']): URL {
    const prefix = route.replace(/^\/+|\/+$/g, '');
    const rel = path.replace(/^\/+/, '');
    // WHATWG URL resolves dot segments (`..`, `%2e%2e`) and '\' before sending, so the gateway
    // would judge a different path than the one the caller wrote; '?' and '#' belong in `query`.
    if (/(^|\/)(\.|%2e){1,2}(\/|$)|[?#\\]/i.test(`${prefix}/${rel}`))
      throw new TypeError(`unsafe tool path "${route}" + "${path}": no dot segments, '\\', '?' or '#'`);
    const url = new URL(`${prefix}/${rel}`, this.#base);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined) continue;
      for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item));
    }
    return url;
  }
}

/** The `error` object of a Portcullis refusal body. */
interface RefusalBody {
  readonly code: string;
  readonly message: string;
  readonly reasons: readonly string[];
}

/** The refusal in a response body, or null when the body is the tool's own answer. */
function refusalOf(data: unknown): RefusalBody | null {
  const e = (data as { error?: unknown } | null)?.error as Partial<RefusalBody> | undefined;
  if (typeof e?.code !== 'string' || !e.code.startsWith('PC_')) return null;
  return {
    code: e.code,
    message: typeof e.message === 'string' ? e.message : e.code,
    reasons: Array.isArray(e.reasons) ? e.reasons.filter((r): r is string => typeof r === 'string') : [],
  };
}

function lowerCaseKeys(headers: CallOptions['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k.toLowerCase()] = v;
  return out;
}

function isJson(contentType: string | null): boolean {
  const mime = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return mime === 'application/json' || mime.endsWith('+json');
}

/** A body labelled JSON that does not parse is returned as text rather than failing the call. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A client of OPA's bundle service API: one origin of policy bytes (docs/policy-lifecycle.md,
 * Bundle service). It fetches, polls and persists; it never unpacks, verifies or compiles. The
 * policy store does that in `onBundle`, and only a bundle the store accepted (put in force) is
 * persisted and has its ETag adopted. A refused bundle is remembered by ETag and digest: while
 * the server keeps serving exactly it, it is not handed over (nor reported) again, and every poll
 * still names the bundle in force in If-None-Match.
 *
 * The protocol, as OPA's downloader speaks it (open-policy-agent/opa download/download.go):
 * `GET url`, `If-None-Match: <ETag>` once a bundle is in force, `304` keeps it, `200` carries a
 * gzipped tarball, anything else is a failure. Between polls a uniformly random delay in
 * `[minDelayS, maxDelayS]`. `Prefer: modes=snapshot` says that delta bundles are not
 * understood; long polling (`Prefer: wait=N`) is not asked for.
 *
 * What it refuses, each failure a BundleServiceError whose message names the URL (origin and
 * path: never userinfo or the query, which may carry a signature) and the cause, never a
 * header value:
 * - redirects: a 3xx is a failure, not followed (OPA's Go client follows them; a bundle URL is
 *   configured, and a redirect could carry the bearer token or the bundle's origin elsewhere);
 * - bodies larger than `maxBytes`, by Content-Length before reading or while reading, and after
 *   decoding a gzip transport encoding (a small body that inflates is refused too);
 * - transport encodings other than gzip (it asks for `identity`; a bundle is gzipped already);
 * - a bearer token over plain http to a host that is not loopback (at construction).
 *
 * The poll loop never throws: failures go to `onError` with the delay before the next try, which
 * backs off (doubling from minDelayS) but stays within `[minDelayS, maxDelayS]`.
 */
import { createSecureContext } from 'node:tls';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { Agent, request } from 'undici';
import { caCertificates } from '../config/pem';
import { revealSecret, Secret } from '../secret';
import { readPersistedBundle, sha256Hex, usableEtag, writePersistedBundle } from './persisted-bundle';

const gunzipAsync = promisify(gunzip);

/** `maxBytes` when not configured: 64 MiB, as a body on the wire and decoded. */
export const DEFAULT_MAX_BUNDLE_BYTES = 64 * 1024 * 1024;

/** Why a fetch, a hand-over or the fallback failed. */
export type BundleServiceErrorCode =
  /** The connection failed (refused, reset, TLS handshake or certificate refused). */
  | 'unreachable'
  /** No complete answer within `timeoutMs`. */
  | 'timeout'
  /** An answer other than 200 and 304. */
  | 'http_status'
  /** A 3xx other than 304: redirects are not followed. */
  | 'redirect'
  /** The body exceeds `maxBytes` (on the wire or decoded). */
  | 'too_large'
  /** A Content-Encoding other than identity and gzip, or a gzip body that does not decode. */
  | 'bad_encoding'
  /** A 200 with an empty body. */
  | 'empty'
  /** `onBundle` rejected the bundle. */
  | 'refused'
  /** The persisted bundle is torn or unreadable. */
  | 'persisted_invalid'
  /** The accepted bundle could not be persisted (it stays in force). */
  | 'persist_failed'
  /** initial(): neither the server nor the persist directory gave a bundle that was accepted. */
  | 'no_bundle'
  /** close() was called. */
  | 'closed';

/** A bundle service failure. The message is safe to log: URL without secrets, no header value. */
export class BundleServiceError extends Error {
  readonly code: BundleServiceErrorCode;
  /** The bundle URL as shown in messages (origin and path). */
  readonly url: string;

  constructor(code: BundleServiceErrorCode, url: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BundleServiceError';
    this.code = code;
    this.url = url;
  }
}

/** TLS towards the bundle service: a private CA and/or a client certificate (mTLS). PEM. */
export interface BundleServiceTls {
  /** Trusted CAs instead of the system's; null: the system's. */
  readonly ca: Buffer | null;
  /** Client certificate and its key, both or neither. */
  readonly cert: Buffer | null;
  readonly key: Buffer | Secret | null;
}

/** Options (from `policy.bundle`). */
export interface BundleServiceOptions {
  /** The bundle's URL: http or https, no userinfo. A query is allowed and never shown. */
  readonly url: URL;
  /** Bounds of the random delay between polls, seconds (fractions allowed); 0 < min <= max. */
  readonly minDelayS: number;
  readonly maxDelayS: number;
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token: Secret | null;
  readonly tls: BundleServiceTls | null;
  /** Where the last bundle put in force is kept (persisted-bundle.ts). */
  readonly persistDir: string;
  /** Bounds one whole exchange: connect, headers and body. */
  readonly timeoutMs: number;
  /** Largest bundle accepted, on the wire and decoded; DEFAULT_MAX_BUNDLE_BYTES by default. */
  readonly maxBytes?: number;
  /** Uniform in [0, 1); Math.random by default (tests inject their own). */
  readonly random?: () => number;
}

/** A bundle as handed to `onBundle`. */
export interface BundleMeta {
  /** The ETag it was served with; null when the server sent none. */
  readonly etag: string | null;
  /** Hex SHA-256 of the bytes. */
  readonly sha256: string;
  readonly source: 'server' | 'persisted';
}

/** The bundle put in force by initial(). */
export interface InForceBundle extends BundleMeta {
  readonly bytes: Buffer;
}

/** Where an error happened, and when the next poll is due (null outside the poll loop). */
export interface BundleErrorMeta {
  readonly url: string;
  readonly during: 'initial' | 'poll' | 'persist';
  readonly retryInMs: number | null;
}

/**
 * What one poll came to: `not_modified` (304), `unchanged` (200 with the bytes in force),
 * `accepted`, `refused`, `refused_before` (200 with the bundle refused last time: not handed
 * over again), `failed`.
 */
export type PollResult = 'not_modified' | 'unchanged' | 'accepted' | 'refused' | 'refused_before' | 'failed';

/** What the service calls. */
export interface BundleServiceEvents {
  /**
   * A candidate bundle. Resolve once it is verified and in force; reject to refuse it (the
   * bundle in force stays, and this one is not persisted).
   */
  onBundle(bytes: Buffer, meta: BundleMeta): Promise<void>;
  /** A failure. Called from the poll loop, which carries on whatever this does. */
  onError(error: BundleServiceError, meta: BundleErrorMeta): void;
  /** After each poll: its result, the HTTP status (null when there was none) and the delay before the next. */
  onPolled?(poll: { readonly result: PollResult; readonly status: number | null; readonly nextDelayMs: number }): void;
}

type Fetched = { readonly status: 304 } | { readonly status: 200; readonly bytes: Buffer; readonly etag: string | null };

/** A bundle's identity for the comparisons below: ETag and digest. */
interface Seen {
  readonly etag: string | null;
  readonly sha256: string;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** The URL as messages show it: origin and path; a query is marked, never shown. */
export function displayUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search ? '?…' : ''}`;
}

/** Content-Encoding values, lower-cased, identity dropped. */
function codings(header: string | string[] | undefined): string[] {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
}

/** Polls one bundle URL; see the module comment. */
export class BundleService {
  readonly url: string;
  readonly #target: URL;
  readonly #options: BundleServiceOptions;
  readonly #events: BundleServiceEvents;
  readonly #token: Secret | null;
  readonly #agent: Agent;
  readonly #closing = new AbortController();
  readonly #maxBytes: number;
  readonly #random: () => number;
  #inForce: Seen | null = null;
  #refused: Seen | null = null;
  #failures = 0;
  #started = false;
  #timer: NodeJS.Timeout | null = null;
  #polling: Promise<void> | null = null;

  /** Throws TypeError when the options are unusable (checked once, here). */
  constructor(options: BundleServiceOptions, events: BundleServiceEvents) {
    const url = new URL(options.url);
    this.url = displayUrl(url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`bundle service ${this.url}: the URL must be http or https`);
    if (url.username || url.password) throw new TypeError(`bundle service ${this.url}: the URL must not embed credentials; use the token`);
    if (url.hash) throw new TypeError(`bundle service ${this.url}: the URL must not have a fragment`);
    if (options.token !== null && url.protocol === 'http:' && !LOOPBACK.test(url.hostname))
      throw new TypeError(`bundle service ${this.url}: a bearer token is sent only over https (or to a loopback address)`);
    if (options.tls !== null && url.protocol !== 'https:') throw new TypeError(`bundle service ${this.url}: TLS options need an https URL`);
    const { minDelayS, maxDelayS } = options;
    if (!(Number.isFinite(minDelayS) && Number.isFinite(maxDelayS) && minDelayS > 0 && maxDelayS >= minDelayS))
      throw new TypeError(`bundle service ${this.url}: the delays must satisfy 0 < minDelayS <= maxDelayS (got ${minDelayS}, ${maxDelayS})`);
    if (!(Number.isInteger(options.timeoutMs) && options.timeoutMs > 0))
      throw new TypeError(`bundle service ${this.url}: timeoutMs must be a positive integer`);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
    if (!(Number.isSafeInteger(maxBytes) && maxBytes > 0)) throw new TypeError(`bundle service ${this.url}: maxBytes must be a positive integer`);
    if (options.token !== null) {
      // RFC 6750 b64token: nothing that could end the header or smuggle another. The value is never shown.
      if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(revealSecret(options.token)))
        throw new TypeError(`bundle service ${this.url}: the token from ${options.token.source} is not a valid bearer token`);
    }
    const tls = options.tls;
    let connectTls: { ca?: Buffer; cert?: Buffer; key?: Buffer | string } = {};
    if (tls !== null) {
      if ((tls.cert === null) !== (tls.key === null))
        throw new TypeError(`bundle service ${this.url}: a client certificate needs its key, and a key its certificate`);
      const key = tls.key instanceof Secret ? revealSecret(tls.key) : tls.key;
      connectTls = { ...(tls.ca !== null ? { ca: tls.ca } : {}), ...(tls.cert !== null && key !== null ? { cert: tls.cert, key } : {}) };
      try {
        // Node skips a CA it cannot parse, which would silently trust none: check each one.
        if (tls.ca !== null) caCertificates(tls.ca.toString('utf8'));
        createSecureContext(connectTls);
      } catch (err) {
        throw new TypeError(`bundle service ${this.url}: the TLS files are not usable (${(err as Error).message})`);
      }
    }
    this.#target = url;
    this.#options = options;
    this.#events = events;
    this.#token = options.token;
    this.#maxBytes = maxBytes;
    this.#random = options.random ?? Math.random;
    this.#agent = new Agent({ connect: { timeout: options.timeoutMs, ...connectTls }, keepAliveTimeout: 30_000, connections: 1 });
  }

  /** The ETag of the bundle in force (sent as If-None-Match), if any. */
  get etag(): string | null {
    return this.#inForce?.etag ?? null;
  }

  /**
   * The first bundle: one GET, handed to `onBundle`. When the server is down, slow, answers
   * anything but a usable 200, or its bundle is refused, the persisted bundle is handed over
   * instead (`source: 'persisted'`, and the server's failure goes to `onError`). Rejects with
   * `no_bundle`, naming the URL and each cause, when neither gives a bundle that was accepted.
   */
  async initial(): Promise<InForceBundle> {
    let failure: BundleServiceError;
    try {
      const got = await this.#fetch(null);
      if (got.status === 200) return await this.#handOver(got.bytes, got.etag, 'server');
      failure = new BundleServiceError('http_status', this.url, `${this.url} answered 304 to a request without If-None-Match`);
    } catch (err) {
      failure = this.#asError(err);
      if (failure.code === 'closed') throw failure;
    }
    const dir = this.#options.persistDir;
    let persisted: Awaited<ReturnType<typeof readPersistedBundle>>;
    try {
      persisted = await readPersistedBundle(dir);
    } catch (err) {
      throw new BundleServiceError('no_bundle', this.url, `no policy bundle: ${failure.message}; and ${(err as Error).message}`, { cause: failure });
    }
    if (persisted === null)
      throw new BundleServiceError('no_bundle', this.url, `no policy bundle: ${failure.message}; and no bundle is persisted in ${dir}`, { cause: failure });
    this.#report(failure, 'initial', null);
    try {
      return await this.#handOver(persisted.bytes, persisted.etag, 'persisted');
    } catch (err) {
      throw new BundleServiceError('no_bundle', this.url, `no policy bundle: ${failure.message}; and ${(err as Error).message}`, { cause: failure });
    }
  }

  /** Starts polling: the first poll after one delay (initial() has just fetched). Idempotent. */
  start(): void {
    if (this.#started || this.#closing.signal.aborted) return;
    this.#started = true;
    this.#schedule(this.#delayMs());
  }

  /** Stops polling, aborts a request in flight, and resolves once no poll runs (an `onBundle` in progress is awaited). */
  async close(): Promise<void> {
    this.#closing.abort();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#polling?.catch(() => undefined);
    await this.#agent.destroy().catch(() => undefined);
  }

  /** Persists `bytes` (with the ETag it came with) as the last bundle put in force; returns its SHA-256. */
  persist(bytes: Buffer, etag: string | null): Promise<string> {
    return writePersistedBundle(this.#options.persistDir, bytes, etag);
  }

  /** The delay before the next poll: uniform in [min, max]; after failures in [min, min(max, min·2^failures)]. */
  #delayMs(): number {
    const min = this.#options.minDelayS * 1000;
    const max = this.#options.maxDelayS * 1000;
    const cap = this.#failures === 0 ? max : Math.min(max, min * 2 ** Math.min(this.#failures, 52));
    const r = Math.min(Math.max(this.#random(), 0), 1);
    return min + r * (cap - min);
  }

  #schedule(ms: number): void {
    if (this.#closing.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#polling = this.#poll().finally(() => {
        this.#polling = null;
      });
    }, ms);
    this.#timer.unref();
  }

  /** One poll, then the next one scheduled. Never throws. */
  async #poll(): Promise<void> {
    let result: PollResult;
    let status: number | null = null;
    let error: BundleServiceError | null = null;
    try {
      const got = await this.#fetch(this.#inForce?.etag ?? null);
      status = got.status;
      this.#failures = 0;
      if (got.status === 304) result = 'not_modified';
      else ({ result, error } = await this.#consider(got.bytes, got.etag));
    } catch (err) {
      error = this.#asError(err);
      if (error.code === 'closed') return;
      this.#failures++;
      result = 'failed';
    }
    if (this.#closing.signal.aborted) return;
    const next = this.#delayMs();
    if (error !== null) this.#report(error, 'poll', next);
    try {
      this.#events.onPolled?.({ result, status, nextDelayMs: next });
    } catch {
      // An observer's fault must not stop the polls.
    }
    this.#schedule(next);
  }

  /** A 200 during polling: the same bytes, the bundle refused last time, or a candidate. */
  async #consider(bytes: Buffer, etag: string | null): Promise<{ result: PollResult; error: BundleServiceError | null }> {
    const sha256 = sha256Hex(bytes);
    const inForce = this.#inForce;
    if (inForce !== null && inForce.sha256 === sha256) {
      // The server ignored If-None-Match, or changed only the ETag: nothing new to load.
      if (etag !== inForce.etag) {
        this.#inForce = { etag, sha256 };
        await this.#persistQuietly(bytes, etag);
      }
      return { result: 'unchanged', error: null };
    }
    const refused = this.#refused;
    if (refused !== null && refused.sha256 === sha256 && refused.etag === etag) return { result: 'refused_before', error: null };
    try {
      await this.#handOver(bytes, etag, 'server');
      return { result: 'accepted', error: null };
    } catch (err) {
      return { result: 'refused', error: this.#asError(err) };
    }
  }

  /** Hands a candidate to the store; accepted: in force, persisted (from the server), ETag adopted; refused: remembered. */
  async #handOver(bytes: Buffer, etag: string | null, source: 'server' | 'persisted'): Promise<InForceBundle> {
    const sha256 = sha256Hex(bytes);
    try {
      await this.#events.onBundle(bytes, { etag, sha256, source });
    } catch (err) {
      this.#refused = { etag, sha256 };
      const what = source === 'server' ? `the bundle from ${this.url}` : `the persisted bundle in ${this.#options.persistDir}`;
      throw new BundleServiceError(
        'refused',
        this.url,
        `${what} (ETag ${etag ?? 'none'}, sha256 ${sha256}) was refused: ${(err as Error)?.message ?? String(err)}`,
        {
          cause: err,
        },
      );
    }
    this.#inForce = { etag, sha256 };
    if (this.#refused?.sha256 === sha256) this.#refused = null;
    if (source === 'server') await this.#persistQuietly(bytes, etag);
    return { bytes, etag, sha256, source };
  }

  /** Persists; a failure is reported, the bundle stays in force. */
  async #persistQuietly(bytes: Buffer, etag: string | null): Promise<void> {
    try {
      await this.persist(bytes, etag);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      this.#report(
        new BundleServiceError(
          'persist_failed',
          this.url,
          `the bundle in force could not be persisted in ${this.#options.persistDir} (${e.code ?? e.message})`,
          { cause: err },
        ),
        'persist',
        null,
      );
    }
  }

  #report(error: BundleServiceError, during: BundleErrorMeta['during'], retryInMs: number | null): void {
    try {
      this.#events.onError(error, { url: this.url, during, retryInMs });
    } catch {
      // As for onPolled.
    }
  }

  /** One GET, bounded by timeoutMs as a whole; the body read up to maxBytes and decoded. */
  async #fetch(etag: string | null): Promise<Fetched> {
    if (this.#closing.signal.aborted) throw new BundleServiceError('closed', this.url, `the bundle service client for ${this.url} is closed`);
    const timeoutMs = this.#options.timeoutMs;
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(timeoutMs)]);
    const headers: Record<string, string> = { 'accept-encoding': 'identity', prefer: 'modes=snapshot' };
    if (etag !== null) headers['if-none-match'] = etag;
    // Revealed here only, into the request: never kept in a field that util.inspect would show.
    if (this.#token !== null) headers.authorization = `Bearer ${revealSecret(this.#token)}`;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(this.#target, { method: 'GET', headers, dispatcher: this.#agent, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    } catch (err) {
      throw this.#transportError(err, signal);
    }
    const status = res.statusCode;
    // An answer not read to its end is dumped (a few KiB, so the connection is kept) or, past that, dropped.
    const discard = () => void res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    const fail = (code: BundleServiceErrorCode, message: string): never => {
      discard();
      throw new BundleServiceError(code, this.url, message);
    };
    if (status === 304) {
      discard();
      return { status: 304 };
    }
    if (status >= 300 && status < 400) {
      const location = typeof res.headers.location === 'string' ? URL.parse(res.headers.location, this.#target.href) : null;
      fail(
        'redirect',
        `${this.url} answered ${status}${location ? ` to ${displayUrl(location)}` : ''}; redirects are not followed: configure the URL the bundle is served at`,
      );
    }
    if (status !== 200) fail('http_status', `${this.url} answered ${status}`);
    const encodings = codings(res.headers['content-encoding']);
    const gzipped = encodings.length === 1 && (encodings[0] === 'gzip' || encodings[0] === 'x-gzip');
    if (encodings.length > 0 && !gzipped)
      fail('bad_encoding', `${this.url} answered with Content-Encoding ${encodings.join(', ')}; only identity or gzip is accepted`);
    const max = this.#maxBytes;
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) fail('too_large', `the bundle from ${this.url} is ${declared} bytes, more than the ${max} allowed`);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > max) fail('too_large', `the bundle from ${this.url} is larger than the ${max} bytes allowed`);
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof BundleServiceError) throw err;
      throw this.#transportError(err, signal);
    }
    let bytes = Buffer.concat(chunks, size);
    if (gzipped) {
      try {
        bytes = await gunzipAsync(bytes, { maxOutputLength: max });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)
          throw new BundleServiceError(
            'too_large',
            this.url,
            `the bundle from ${this.url} decodes (Content-Encoding gzip) to more than the ${max} bytes allowed`,
          );
        throw new BundleServiceError(
          'bad_encoding',
          this.url,
          `the bundle from ${this.url} is not valid gzip although its Content-Encoding says so (${e.code ?? e.message})`,
        );
      }
    }
    if (bytes.length === 0) throw new BundleServiceError('empty', this.url, `${this.url} answered 200 with an empty body`);
    return { status: 200, bytes, etag: usableEtag(res.headers.etag) };
  }

  /** A failure before or while reading the answer, by cause: closed, timed out, or unreachable (with the system's code). */
  #transportError(err: unknown, signal: AbortSignal): BundleServiceError {
    if (this.#closing.signal.aborted) return new BundleServiceError('closed', this.url, `the bundle service client for ${this.url} is closed`);
    const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
    const code = e.cause?.code ?? e.code ?? e.name;
    if (signal.aborted || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
      return new BundleServiceError('timeout', this.url, `${this.url} did not answer within ${this.#options.timeoutMs} ms`);
    return new BundleServiceError('unreachable', this.url, `${this.url} could not be reached (${code})`);
  }

  #asError(err: unknown): BundleServiceError {
    if (err instanceof BundleServiceError) return err;
    return new BundleServiceError('unreachable', this.url, `${this.url}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}

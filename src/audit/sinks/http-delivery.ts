/**
 * The HTTP transport shared by the webhook and Splunk HEC sinks: one undici Agent per sink
 * (keep-alive, optional private CA and client certificate), a POST per batch bounded by a
 * timeout, and an abort when the sink closes. Redirects are not followed: a 3xx is a failure.
 * Error messages name the receiver's origin and status, never a header value.
 */
import { Agent, request } from 'undici';
import { SinkError } from './record-sink';
import type { SinkTlsOptions } from './sink-tls';

/** Options of an HttpPoster. */
export interface HttpPosterOptions {
  readonly url: string;
  /** Whole-attempt timeout: connect, send, headers and body. */
  readonly timeoutMs: number;
  readonly tls?: SinkTlsOptions | null;
}

/** An answer from the receiver. */
export interface HttpAnswer {
  readonly status: number;
  /** The body as text, at most 64 KiB (enough for an acknowledgement). */
  readonly body: string;
}

/** Sends POST requests to one URL. */
export interface HttpPoster {
  readonly origin: string;
  post(headers: Record<string, string>, body: string | Buffer): Promise<HttpAnswer>;
  close(): Promise<void>;
}

const MAX_ANSWER = 64 * 1024;

/** Parses and checks a receiver URL; throws TypeError naming `what` when it is unusable. */
export function receiverUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${what}: "${value}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${what}: the URL must be http or https`);
  if (url.username || url.password) throw new TypeError(`${what}: the URL must not embed credentials; use headers from a secret`);
  return url;
}

/** Builds a poster. */
export function httpPoster(options: HttpPosterOptions): HttpPoster {
  const url = new URL(options.url);
  const t = options.tls;
  const agent = new Agent({
    connect: { timeout: options.timeoutMs, ...(t ? { ca: t.ca, cert: t.cert, key: t.key, servername: t.servername } : {}) },
    keepAliveTimeout: 30_000,
    connections: 1,
  });
  const closing = new AbortController();
  return {
    origin: url.origin,
    async post(headers, body) {
      if (closing.signal.aborted) throw new SinkError('the sink is closed');
      const signal = AbortSignal.any([closing.signal, AbortSignal.timeout(options.timeoutMs)]);
      try {
        const res = await request(url, {
          method: 'POST',
          headers,
          body,
          dispatcher: agent,
          signal,
          headersTimeout: options.timeoutMs,
          bodyTimeout: options.timeoutMs,
        });
        let text = '';
        for await (const chunk of res.body) {
          if (text.length < MAX_ANSWER) text += (chunk as Buffer).toString('utf8');
        }
        return { status: res.statusCode, body: text.slice(0, MAX_ANSWER) };
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
        const reason = signal.aborted && !closing.signal.aborted ? `timed out after ${options.timeoutMs} ms` : (e.cause?.code ?? e.code ?? e.name);
        throw new SinkError(`POST to ${url.origin} failed: ${reason}`);
      }
    },
    async close() {
      closing.abort();
      await agent.destroy().catch(() => undefined);
    },
  };
}

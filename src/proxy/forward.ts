/**
 * Forwarding with undici: one keep-alive Pool per route, the request body sent as the exact
 * bytes the policy judged, the response streamed back without buffering (SSE included) through
 * the credential masker. A client that goes away aborts the upstream request. Chosen over
 * http-proxy 1.18 (unmaintained, leaks sockets, keeps upstream SSE open after the client
 * leaves): see docs/forwarding.md for the measurements.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { type Transform, Writable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
import type { RouteConfig } from '../config/types';
import type { CredentialBinding } from '../credential-injector/injector';
import { GatewayError } from '../errors';
import { forwardableResponseHeaders } from './headers';

/** How a forwarded call ended. */
export interface ForwardResult {
  readonly status: number;
  /** Time to response headers, ms. */
  readonly headersMs: number;
  /** Set when the call did not complete normally. */
  readonly code?: 'PC_UPSTREAM_UNAVAILABLE' | 'PC_UPSTREAM_TIMEOUT' | 'client_closed' | 'upstream_stream_error';
  /** True when a credential value was masked in the response. */
  readonly masked: boolean;
}

/** What the forward stage needs from a call. */
export interface ForwardRequest {
  readonly route: RouteConfig;
  readonly method: string;
  /** Upstream path with query. */
  readonly path: string;
  /** Headers to send, the credential already attached by the inject-credential stage. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly decisionId: string;
  /** The attached credential, whose values are masked in the answer; null on routes without one. */
  readonly binding: CredentialBinding | null;
  /**
   * Called with the upstream status and headers before anything is sent to the agent. May
   * return a transform the body then flows through (before masking); it may fail the stream,
   * which cuts the answer short rather than pass it on unchanged.
   */
  readonly onResponse?: (status: number, headers: IncomingHttpHeaders) => Transform | null;
}

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);

function classify(err: unknown): GatewayError {
  const code = (err as { code?: string }).code ?? '';
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError || code === 'ETIMEDOUT') {
    return new GatewayError('PC_UPSTREAM_TIMEOUT', 'the upstream did not answer in time');
  }
  return new GatewayError('PC_UPSTREAM_UNAVAILABLE', `the upstream is unavailable (${code || 'connection failed'})`);
}

/** Largest response (by Content-Length) masked whole rather than streamed. */
const BUFFERED_MASK_LIMIT = 64 * 1024;

/** A writable that gathers a small body and hands it over whole when it ends. */
function collect(done: (body: Buffer) => void): Writable {
  const chunks: Buffer[] = [];
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
    final(cb) {
      done(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      cb();
    },
  });
}

/** Masks credential values in response headers; true if any was found. */
function maskHeaders(out: OutgoingHttpHeaders, binding: CredentialBinding): boolean {
  const m = binding.masker;
  let masked = false;
  for (const k in out) {
    const v = out[k];
    if (typeof v === 'string') {
      const mv = m.maskString(v);
      if (mv !== v) masked = true;
      out[k] = mv;
    } else if (Array.isArray(v)) {
      out[k] = v.map((x) => {
        const mx = m.maskString(x);
        if (mx !== x) masked = true;
        return mx;
      });
    }
  }
  return masked;
}

/** Forwards allowed calls to upstreams. */
export class Forwarder {
  private readonly pools = new Map<string, Pool>();

  /** `sockets`: routes reached over a Unix socket instead of their origin (stdio bridges). */
  constructor(routes: readonly RouteConfig[], sockets: ReadonlyMap<string, string> = new Map()) {
    for (const r of routes) {
      const socketPath = sockets.get(r.name);
      this.pools.set(
        r.name,
        new Pool(r.origin, {
          connections: 256,
          keepAliveTimeout: 4_000,
          connect: { timeout: r.timeouts.connectMs, ...(socketPath ? { socketPath } : {}) },
          headersTimeout: r.timeouts.headersMs,
          bodyTimeout: r.timeouts.idleMs,
        }),
      );
    }
  }

  /**
   * Sends the request and streams the answer into `res`. Throws GatewayError (502/504) only
   * before response headers were sent; afterwards failures end the stream and are reported in
   * the result.
   */
  async forward(req: ForwardRequest, res: ServerResponse): Promise<ForwardResult> {
    const pool = this.pools.get(req.route.name) as Pool;
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    const started = process.hrtime.bigint();
    const headers: Record<string, string> = { ...req.headers, 'x-portcullis-decision-id': req.decisionId };
    let status = 0;
    let headersMs = 0;
    let masked = false;
    const binding = req.binding;
    try {
      // stream() writes the body straight into the writable the factory returns: no
      // intermediate Readable, and no stream.pipeline (which allocates an AbortController and
      // an error per call).
      await pool.stream(
        {
          method: req.method as never,
          path: req.path,
          headers,
          body: req.body.length > 0 || !BODYLESS.has(req.method) ? req.body : null,
          signal: abort.signal,
        },
        ({ statusCode, headers: upstreamHeaders }) => {
          status = statusCode;
          headersMs = Number(process.hrtime.bigint() - started) / 1e6;
          const out = forwardableResponseHeaders(upstreamHeaders);
          if (binding) masked = maskHeaders(out, binding) || masked;
          // Only Portcullis speaks in x-portcullis-* headers: an upstream cannot forge a refusal.
          for (const k in out) if (k.startsWith('x-portcullis-')) delete out[k];
          out['x-portcullis-decision-id'] = req.decisionId;
          const filter = req.onResponse?.(statusCode, upstreamHeaders) ?? null;
          if (filter) delete out['content-length'];
          res.writeHead(statusCode, out);
          let sink: Writable = res;
          if (binding) {
            // A small body of known length is masked in one pass and sent with one write; a
            // stream (SSE, chunked, large) goes through the streaming masker.
            const length = Number(upstreamHeaders['content-length']);
            if (!filter && length >= 0 && length <= BUFFERED_MASK_LIMIT) {
              return collect((body) => {
                if (binding.masker.maskBuffer(body)) masked = true;
                res.end(body);
              });
            }
            const masker = binding.masker.stream(() => (masked = true));
            masker.pipe(res);
            sink = masker;
          }
          if (!filter) return sink;
          filter.pipe(sink);
          return filter;
        },
      );
    } catch (err) {
      res.off('close', onClose);
      if (status === 0) {
        if (abort.signal.aborted) return { status: 499, headersMs: 0, code: 'client_closed', masked: false };
        throw classify(err);
      }
      res.destroy();
      return { status, headersMs, code: abort.signal.aborted ? 'client_closed' : 'upstream_stream_error', masked };
    }
    res.off('close', onClose);
    return { status, headersMs, masked };
  }

  /** Closes every pool. */
  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }

  /** Connections currently open to upstreams (for leak tests and metrics). */
  connectionCount(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.stats.connected;
    return n;
  }
}

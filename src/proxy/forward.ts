/**
 * Forwarding with undici: one keep-alive Pool per route (an HttpUpstream, held by the route's
 * run-time object), the request body sent as the exact
 * bytes the policy judged, the response streamed back without buffering (SSE included) through
 * the credential masker. A client that goes away aborts the upstream request. Chosen over
 * http-proxy 1.18 (unmaintained, leaks sockets, keeps upstream SSE open after the client
 * leaves): see docs/forwarding.md for the measurements.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline, type Transform, Writable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
import type { RouteConfig } from '../config/types';
import type { UpstreamTls } from '../credential-injector/provider';
import { GatewayError, isOutcomeCode, type OutcomeCode } from '../errors';

/** How a forwarded call ended. */
export interface ForwardResult {
  readonly status: number;
  /** Time to response headers, ms. */
  readonly headersMs: number;
  /**
   * Set when the call did not complete normally (an outcome code, never on the wire):
   * `client_closed`, `upstream_stream_error`, or the code of the body transform that cut the
   * answer off (a list filter's, the masker's, the decoder's).
   */
  readonly code?: OutcomeCode;
}

/** What the response stages made of an upstream answer's head (response/response-pipeline.ts). */
export interface ResponsePlan {
  readonly headers: OutgoingHttpHeaders;
  /** Body transforms in order; empty to send the body as it comes. */
  readonly steps: readonly Transform[];
  /** Set for a small body to be rewritten whole, in place, before one write. */
  readonly whole: ((body: Buffer) => void) | null;
}

/** What the forward stage needs from a call. */
export interface ForwardRequest {
  readonly method: string;
  /** Upstream path with query. */
  readonly path: string;
  /** Headers to send, the credential already attached by the inject-credential stage. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly decisionId: string;
  /**
   * Called with the upstream status and headers before anything is sent to the agent: the
   * response half of the pipeline. May throw a GatewayError to refuse the answer, which is then
   * thrown from forward() (nothing was sent).
   */
  readonly respond: (status: number, headers: IncomingHttpHeaders) => ResponsePlan;
}

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);

function classify(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError || code === 'ETIMEDOUT') {
    return new GatewayError('PC_UPSTREAM_TIMEOUT', 'the upstream did not answer in time');
  }
  return new GatewayError('PC_UPSTREAM_UNAVAILABLE', `the upstream is unavailable (${code || 'connection failed'})`);
}

/**
 * The outcome code a body transform cut the answer off with (a ListFilterError's, a
 * MaskHoldError's, a DecodeError's: lower-case codes), or null for any other error.
 */
function stepCode(err: unknown): OutcomeCode | null {
  const code = (err as { code?: unknown } | null)?.code;
  return isOutcomeCode(code) ? code : null;
}

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

/**
 * The TLS options of connections presenting a client certificate: the certificate and key, and
 * with a CA pin, that CA instead of the system roots (the upstream's certificate must chain to
 * it, else the handshake fails and the call is 502 PC_UPSTREAM_UNAVAILABLE, nothing sent).
 */
function clientTlsOptions(tls: UpstreamTls): { cert: string; key: string; ca?: string } {
  const { cert, key, ca } = tls.current();
  return { cert, key, ...(ca !== null ? { ca } : {}) };
}

/** A route's upstream, as the forward stage sees it. */
export interface Upstream {
  /** Sends an allowed call and streams its answer into `res` (see HttpUpstream.forward). */
  forward(req: ForwardRequest, res: ServerResponse): Promise<ForwardResult>;
  /** Connections open to the upstream now (for leak tests and metrics). */
  connectionCount(): number;
  close(): Promise<void>;
}

/** A route's upstream over HTTP/1.1: one keep-alive pool. */
export class HttpUpstream implements Upstream {
  private pool: Pool;
  private readonly totalMs: number;
  /** Pools replaced by a client certificate change, closing once their calls end. */
  private readonly retiring = new Set<Promise<void>>();
  private readonly stopTls: (() => void) | null;

  /**
   * `socketPath`: reach the route over a Unix socket instead of its origin (a stdio bridge).
   * `tls`: the client certificate (and CA pin) of the route's mtls credential. When its files
   * change, new calls get a new pool that connects with the new files; the old pool finishes
   * the calls it carries and closes.
   */
  constructor(route: RouteConfig, socketPath?: string, tls?: UpstreamTls) {
    this.totalMs = route.timeouts.totalMs;
    const make = () =>
      new Pool(route.origin, {
        connections: 256,
        keepAliveTimeout: 4_000,
        connect: { timeout: route.timeouts.connectMs, ...(socketPath ? { socketPath } : {}), ...(tls ? clientTlsOptions(tls) : {}) },
        headersTimeout: route.timeouts.headersMs,
        bodyTimeout: route.timeouts.idleMs,
      });
    this.pool = make();
    this.stopTls = tls
      ? tls.onChange(() => {
          const old = this.pool;
          this.pool = make();
          const closing = old.close().catch(() => undefined);
          this.retiring.add(closing);
          void closing.then(() => this.retiring.delete(closing));
        })
      : null;
  }

  /**
   * Sends the request and streams the answer into `res` through the plan `respond` makes.
   * Throws GatewayError (502/504) only before response headers were sent; afterwards failures
   * end the stream and are reported in the result.
   */
  async forward(req: ForwardRequest, res: ServerResponse): Promise<ForwardResult> {
    const pool = this.pool;
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    // The whole call's deadline: undici's bodyTimeout only bounds silence, not a trickle.
    let timedOut = false;
    const totalMs = this.totalMs;
    const deadline =
      totalMs > 0
        ? setTimeout(() => {
            timedOut = true;
            abort.abort();
          }, totalMs)
        : null;
    const started = process.hrtime.bigint();
    const headers: Record<string, string> = { ...req.headers, 'x-portcullis-decision-id': req.decisionId };
    let status = 0;
    let headersMs = 0;
    /** The first error of a body transform, which names why the answer was cut off. */
    let stepError: unknown = null;
    try {
      // stream() writes the body straight into the writable the factory returns: no
      // intermediate Readable, and no stream.pipeline unless the answer needs transforms.
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
          const plan = req.respond(statusCode, upstreamHeaders);
          res.writeHead(statusCode, plan.headers);
          const whole = plan.whole;
          if (whole) {
            return collect((body) => {
              whole(body);
              res.end(body);
            });
          }
          if (plan.steps.length === 0) return res;
          const noteError = (err: unknown) => {
            if (err && stepError === null && stepCode(err) !== null) stepError = err;
          };
          for (const step of plan.steps) step.once('error', noteError);
          pipeline([...plan.steps, res], noteError);
          return plan.steps[0];
        },
      );
    } catch (err) {
      res.off('close', onClose);
      if (deadline) clearTimeout(deadline);
      if (!res.headersSent) {
        if (timedOut) throw new GatewayError('PC_UPSTREAM_TIMEOUT', 'the upstream did not answer within the call deadline');
        if (abort.signal.aborted) return { status: 499, headersMs: 0, code: 'client_closed' };
        throw classify(err);
      }
      res.destroy();
      return {
        status,
        headersMs,
        code: stepCode(stepError) ?? stepCode(err) ?? (timedOut ? 'upstream_timeout' : abort.signal.aborted ? 'client_closed' : 'upstream_stream_error'),
      };
    }
    res.off('close', onClose);
    if (deadline) clearTimeout(deadline);
    const cut = stepCode(stepError);
    return cut === null ? { status, headersMs } : { status, headersMs, code: cut };
  }

  async close(): Promise<void> {
    this.stopTls?.();
    await Promise.all([this.pool.close(), ...this.retiring]);
  }

  connectionCount(): number {
    return this.pool.stats.connected;
  }
}

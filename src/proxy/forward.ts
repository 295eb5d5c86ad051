/**
 * Forwarding with undici: one keep-alive Pool per route (an HttpUpstream, held by the route's
 * run-time object), the request body sent as the exact
 * bytes the policy judged, the response streamed back without buffering (SSE included) through
 * the credential masker. A client that goes away aborts the upstream request. Chosen over
 * http-proxy 1.18 (unmaintained, leaks sockets, keeps upstream SSE open after the client
 * leaves): see docs/forwarding.md for the measurements.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline, type Transform, type Writable } from 'node:stream';
import { type Dispatcher, Pool, errors as undiciErrors } from 'undici';
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
  forward(req: ForwardRequest, res: ServerResponse): Promise<ForwardResult> {
    return new Promise((resolve, reject) => {
      const call = new ForwardCall(req, res, this.totalMs, resolve, reject);
      this.pool.dispatch(
        {
          method: req.method as never,
          path: req.path,
          headers: { ...req.headers, 'x-portcullis-decision-id': req.decisionId },
          body: req.body.length > 0 || !BODYLESS.has(req.method) ? req.body : null,
        },
        call,
      );
    });
  }

  async close(): Promise<void> {
    this.stopTls?.();
    await Promise.all([this.pool.close(), ...this.retiring]);
  }

  connectionCount(): number {
    return this.pool.stats.connected;
  }
}

/** Why an answer was cut off before it ended: the client left, the deadline passed, the upstream failed. */
type Cut = 'client' | 'timeout' | 'upstream';

const CUT_CODES: Readonly<Record<Cut, OutcomeCode>> = { client: 'client_closed', timeout: 'upstream_timeout', upstream: 'upstream_stream_error' };

/**
 * One forwarded call as an undici dispatch handler: the answer's head goes through `respond`,
 * its body into `res` (whole, through the plan's transforms, or as it comes) with backpressure,
 * and the client's departure or the whole-call deadline aborts the upstream request. A handler
 * rather than `pool.stream()`: the REST profile of issue 13 (docs/benchmarks.md) put `stream()`'s
 * per-call machinery (an AbortController and its listeners, an AsyncResource, a Writable to
 * gather small bodies, lifecycle listeners) at 4–5% of the gateway's busy time.
 */
class ForwardCall implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private readonly started = process.hrtime.bigint();
  private status = 0;
  private headersMs = 0;
  /** Where body chunks go once the head is sent: the response, or the first transform. */
  private sink: Writable | null = null;
  /** A small body being gathered for plan.whole. */
  private chunks: Buffer[] | null = null;
  private whole: ((body: Buffer) => void) | null = null;
  /** The first error of a body transform, which names why the answer was cut off. */
  private stepError: unknown = null;
  /** What `respond` threw (the response stages refused the answer): thrown from forward(). */
  private refusal: unknown = null;
  private cut: Cut | null = null;
  private settled = false;
  private readonly deadline: NodeJS.Timeout | null;
  private readonly onClose = () => {
    if (this.res.writableFinished) return this.done();
    // Closed before the answer ended: the client left (the gateway's own cuts settle first).
    this.cancel('client');
    if (this.res.headersSent) this.cutOff();
  };

  constructor(
    private readonly req: ForwardRequest,
    private readonly res: ServerResponse,
    totalMs: number,
    private readonly resolve: (r: ForwardResult) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    res.once('close', this.onClose);
    // The whole call's deadline: undici's bodyTimeout only bounds silence, not a trickle.
    this.deadline = totalMs > 0 ? setTimeout(() => this.cancel('timeout'), totalMs) : null;
  }

  /**
   * Stops the call for `cause`. With the request on its way, undici is told to abort it (and
   * reports back through onResponseError); a request still queued in the pool is answered now
   * and aborted when it leaves the queue (onRequestStart).
   */
  private cancel(cause: Cut): void {
    if (this.settled || this.cut !== null) return;
    this.cut = cause;
    if (this.controller) this.controller.abort(new Error(`forwarding stopped: ${CUT_CODES[cause]}`));
    else this.failBeforeHead(null);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cut !== null) controller.abort(new Error(`forwarding stopped: ${CUT_CODES[this.cut]}`));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200 || this.settled) return; // 1xx: informational, not the answer
    this.status = statusCode;
    this.headersMs = Number(process.hrtime.bigint() - this.started) / 1e6;
    let plan: ResponsePlan;
    try {
      plan = this.req.respond(statusCode, headers);
    } catch (err) {
      this.refusal = err;
      controller.abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const res = this.res;
    res.writeHead(statusCode, plan.headers);
    if (plan.whole) {
      this.whole = plan.whole;
      this.chunks = [];
      return;
    }
    let sink: Writable = res;
    if (plan.steps.length > 0) {
      const noteError = (err: unknown) => {
        if (err && this.stepError === null && stepCode(err) !== null) this.stepError = err;
      };
      for (const step of plan.steps) step.once('error', noteError);
      pipeline([...plan.steps, res], noteError);
      sink = plan.steps[0];
    }
    sink.on('drain', () => controller.resume());
    this.sink = sink;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.chunks) this.chunks.push(chunk);
    else if (this.sink && !this.sink.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    if (this.settled) return;
    const chunks = this.chunks;
    const whole = this.whole;
    if (chunks === null || whole === null) {
      this.sink?.end(); // done once the response has finished (onClose)
      return;
    }
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    try {
      whole(body);
    } catch (err) {
      if (stepCode(err) !== null) this.stepError = err;
      this.cut = 'upstream';
      this.res.destroy();
      return this.cutOff();
    }
    this.res.end(body);
    this.done();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.settled) return;
    if (!this.res.headersSent) return this.failBeforeHead(err);
    this.cut ??= 'upstream';
    if (this.stepError === null && stepCode(err) !== null) this.stepError = err;
    this.res.destroy();
    this.cutOff();
  }

  /** Nothing was sent to the agent: a refusal, a 504, a 499 or a 502. */
  private failBeforeHead(err: Error | null): void {
    this.finish();
    if (this.refusal !== null) return this.reject(this.refusal);
    if (this.cut === 'timeout') return this.reject(new GatewayError('PC_UPSTREAM_TIMEOUT', 'the upstream did not answer within the call deadline'));
    if (this.cut === 'client') return this.resolve({ status: 499, headersMs: 0, code: 'client_closed' });
    this.reject(classify(err));
  }

  /** The answer was sent whole (a transform may still name why it ended early). */
  private done(): void {
    if (this.settled) return;
    this.finish();
    const code = stepCode(this.stepError);
    this.resolve(code === null ? { status: this.status, headersMs: this.headersMs } : { status: this.status, headersMs: this.headersMs, code });
  }

  /** The answer was cut off after its head was sent: why, as an outcome code. */
  private cutOff(): void {
    if (this.settled) return;
    const controller = this.controller;
    if (controller && !controller.aborted) controller.abort(new Error('the answer was cut off')); // stop reading the upstream
    this.finish();
    this.resolve({ status: this.status, headersMs: this.headersMs, code: stepCode(this.stepError) ?? CUT_CODES[this.cut ?? 'upstream'] });
  }

  private finish(): void {
    this.settled = true;
    this.res.off('close', this.onClose);
    if (this.deadline) clearTimeout(this.deadline);
  }
}

/**
 * One MCP session of a stdio bridge: the SDK's Streamable HTTP server transport (which owns the
 * session id, the SSE streams and `Last-Event-ID` resumption) joined message by message to one
 * child process. A stdio server serves one client, so each session has its own child.
 *
 * This module owns what happens when that child dies: requests in flight fail with a JSON-RPC
 * error, the child is restarted with exponential back-off, the session's original `initialize`
 * and `notifications/initialized` are replayed to it (the answer is swallowed), and requests
 * that arrive meanwhile wait, for a bounded time, until it is back.
 *
 * Routing of the child's messages: a response goes to the stream of its request; a progress
 * notification to the stream of the request that carried its progressToken; every other
 * notification and every server-to-client request (sampling, elicitation, roots) to the
 * session's GET stream. stdio does not say which request a server-to-client message belongs
 * to, and the SDK client opens its GET stream only after `notifications/initialized`, in
 * parallel with its first calls; so while no GET stream is open, those messages ride on the
 * stream of the latest request in flight (the SDK's own servers send a tool's sampling request
 * on that tool call's stream), and only with nothing in flight are they stored for the GET
 * stream's replay.
 */
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { Logger } from 'pino';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage, JSONRPCRequest, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { MemoryEventStore } from './memory-event-store';
import { spawnStdioChild, type ChildExit, type StdioChild } from './child';
import type { StdioLaunch } from './launch';

/** JSON-RPC "internal error": what requests get when the child cannot answer them. */
export const INTERNAL_ERROR = -32603;
/** Error message for requests in flight when the child exited. */
export const CHILD_EXITED = 'the stdio server exited';
/** Error message for requests that waited `restartWaitMs` for a restart in vain. */
export const RESTART_TIMED_OUT = 'the stdio server did not restart in time';
/** A child that stayed up this long restarts, when it next exits, after the initial delay again. */
export const STABLE_UPTIME_MS = 30_000;

/** Restart back-off: the first delay, doubled after each restart up to the maximum. */
export interface RestartPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/** What a session needs from its bridge. */
export interface StdioSessionOptions {
  readonly launch: StdioLaunch;
  readonly restart: RestartPolicy;
  /** How long a request waits for a restarting child (and how long a restarted child has to answer the replayed initialize). */
  readonly restartWaitMs: number;
  /** Carries the route name. */
  readonly log: Logger;
  /** The transport gave the session its id (during the initialize request). */
  readonly onOpened: (session: StdioSession) => void;
  /** The session ended: DELETE, transport closed, bridge closing, or a child that died before initialize was answered. */
  readonly onClosed: (session: StdioSession) => void;
}

interface Waiting {
  readonly message: JSONRPCMessage;
  readonly timer: NodeJS.Timeout | null;
}

type Kind = 'request' | 'notification' | 'response';
type ProgressToken = string | number;

/** Messages reaching this module are already validated (by the SDK transport or the child reader). */
function kindOf(message: JSONRPCMessage): Kind {
  if ('method' in message) return 'id' in message ? 'request' : 'notification';
  return 'response';
}

function progressTokenOf(request: JSONRPCRequest): ProgressToken | undefined {
  const token = (request.params?._meta as { progressToken?: unknown } | undefined)?.progressToken;
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}

/** The id of a request or response (an error response may have none). */
function idOf(message: JSONRPCMessage): RequestId | undefined {
  const id = (message as { id?: unknown }).id;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

const tokenKey = (token: unknown) => `${typeof token}:${String(token)}`;

function errorResponse(id: RequestId, message: string): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code: INTERNAL_ERROR, message } };
}

/** A bridged session. Create with `StdioSession.open`. */
export class StdioSession {
  /** Handles this session's HTTP requests. */
  readonly transport: StreamableHTTPServerTransport;
  private readonly options: StdioSessionOptions;
  private readonly log: Logger;
  private child: StdioChild | null = null;
  private state: 'running' | 'restarting' | 'closed' = 'running';
  /** The client's own initialize, replayed to every restarted child. */
  private initializeRequest: JSONRPCRequest | null = null;
  private initializeAnswered = false;
  private clientInitialized = false;
  /** Id of the replayed initialize, whose answer is swallowed. */
  private replayId: string | null = null;
  /** Requests written to the current child and not yet answered → their progress tokens. */
  private readonly inFlight = new Map<RequestId, ProgressToken | undefined>();
  private readonly progressOwners = new Map<string, RequestId>();
  /** Requests the current child sent to the client and that are not yet answered. */
  private readonly serverRequests = new Set<RequestId>();
  private readonly waiting: Waiting[] = [];
  /** Responses to this session's GET requests that have not closed yet. */
  private readonly getResponses = new Set<http.ServerResponse>();
  private delayMs: number;
  private restartTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  /** Sends to the client, in the order the child wrote them. */
  private outbound: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;

  private constructor(options: StdioSessionOptions) {
    this.options = options;
    this.log = options.log;
    this.delayMs = options.restart.initialDelayMs;
    this.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: new MemoryEventStore(),
      onsessioninitialized: () => options.onOpened(this),
    });
    this.transport.onmessage = (message) => this.fromClient(message);
    this.transport.onclose = () => void this.close();
    this.transport.onerror = (err) => this.log.debug({ err }, 'stdio bridge transport refused a request');
  }

  /** Starts a session and its child; rejects when the child cannot be spawned. */
  static async open(options: StdioSessionOptions): Promise<StdioSession> {
    const session = new StdioSession(options);
    session.child = await session.spawn();
    return session;
  }

  /** Serves one HTTP request of this session (POST, GET or DELETE on the MCP endpoint). */
  handle(req: http.IncomingMessage, res: http.ServerResponse, parsedBody?: unknown): Promise<void> {
    if (req.method === 'GET') {
      this.getResponses.add(res);
      res.once('close', () => this.getResponses.delete(res));
    }
    return this.transport.handleRequest(req, res, parsedBody);
  }

  /** True when the client holds a GET stream open (the transport answered a GET with 200). */
  private hasGetStream(): boolean {
    for (const res of this.getResponses) if (res.headersSent && res.statusCode === 200 && !res.writableEnded) return true;
    return false;
  }

  /** PID of the current child, if one is running. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Ends the session: closes its streams and stops its child. Idempotent. */
  close(): Promise<void> {
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.closing = this.shutdown();
    }
    // A re-entrant call (the transport's onclose during shutdown) sees the state before the promise exists.
    return this.closing ?? Promise.resolve();
  }

  private async shutdown(): Promise<void> {
    for (const timer of [this.restartTimer, this.handshakeTimer, ...this.waiting.map((w) => w.timer)]) if (timer) clearTimeout(timer);
    this.waiting.length = 0;
    const child = this.child;
    this.child = null;
    await this.transport.close();
    this.options.onClosed(this);
    if (child) {
      const exit = await child.stop();
      this.log.info({ pid: child.pid, code: exit.code, signal: exit.signal }, 'stdio server stopped');
    }
  }

  private async spawn(): Promise<StdioChild> {
    let spawned: StdioChild | null = null;
    spawned = await spawnStdioChild(
      this.options.launch,
      {
        onMessage: (message) => {
          if (spawned !== null && spawned === this.child) this.fromChild(message);
        },
        onExit: (exit) => this.childExited(spawned!, exit),
      },
      this.log,
    );
    return spawned;
  }

  private fromClient(message: JSONRPCMessage): void {
    if (this.state === 'closed') return;
    const kind = kindOf(message);
    if (kind === 'request') {
      const request = message as JSONRPCRequest;
      if (request.method === 'initialize' && this.initializeRequest === null) this.initializeRequest = request;
    } else if (kind === 'notification' && 'method' in message) {
      if (message.method === 'notifications/initialized') this.clientInitialized = true;
      if (message.method === 'notifications/cancelled') this.settle((message.params as { requestId?: RequestId } | undefined)?.requestId);
    } else if (kind === 'response') {
      const id = idOf(message);
      if (id === undefined || !this.serverRequests.delete(id)) {
        // An answer to a request of a child that has since been replaced: the new one never asked.
        this.log.debug({ id }, 'client answered a request no running stdio server is waiting for; dropped');
        return;
      }
    }
    if (this.state === 'running' && this.child) this.deliver(message, kind);
    else this.wait(message, kind);
  }

  private deliver(message: JSONRPCMessage, kind: Kind): void {
    if (kind === 'request') {
      const request = message as JSONRPCRequest;
      const token = progressTokenOf(request);
      this.inFlight.set(request.id, token);
      if (token !== undefined) this.progressOwners.set(tokenKey(token), request.id);
    }
    // A false return means the child is dying; its exit fails what is in flight.
    this.child!.send(message);
  }

  private settle(id: RequestId | undefined): void {
    if (id === undefined || !this.inFlight.has(id)) return;
    const token = this.inFlight.get(id);
    if (token !== undefined) this.progressOwners.delete(tokenKey(token));
    this.inFlight.delete(id);
  }

  private fromChild(message: JSONRPCMessage): void {
    if (this.state === 'closed') return;
    const kind = kindOf(message);
    const id = idOf(message);
    if (kind === 'response') {
      if (id !== undefined && id === this.replayId) return this.handshakeDone(message);
      if (id === undefined || !this.inFlight.has(id)) {
        this.log.debug({ id }, 'stdio server answered a request that is not in flight; dropped');
        return;
      }
      this.settle(id);
      if (!this.initializeAnswered && id === this.initializeRequest?.id && 'result' in message) this.initializeAnswered = true;
      return this.toClient(message);
    }
    if (kind === 'request' && id !== undefined) this.serverRequests.add(id);
    const owner =
      'method' in message && message.method === 'notifications/progress' ? this.progressOwners.get(tokenKey(message.params?.progressToken)) : undefined;
    this.toClient(message, owner ?? this.carrierWithoutGetStream());
  }

  /** The latest request in flight, when the client has no GET stream to receive server-initiated messages. */
  private carrierWithoutGetStream(): RequestId | undefined {
    if (this.inFlight.size === 0 || this.hasGetStream()) return undefined;
    let latest: RequestId | undefined;
    for (const id of this.inFlight.keys()) latest = id;
    return latest;
  }

  /** Queues a message for the client; without `relatedRequestId`, requests and notifications go to the GET stream. */
  private toClient(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    const options = relatedRequestId === undefined ? undefined : { relatedRequestId };
    this.outbound = this.outbound.then(() =>
      this.transport.send(message, options).catch((err: unknown) => this.log.debug({ err }, 'message for the client could not be delivered')),
    );
  }

  private wait(message: JSONRPCMessage, kind: Kind): void {
    let timer: NodeJS.Timeout | null = null;
    if (kind === 'request') {
      const id = (message as JSONRPCRequest).id;
      timer = setTimeout(() => {
        const at = this.waiting.findIndex((w) => w.message === message);
        if (at !== -1) this.waiting.splice(at, 1);
        this.toClient(errorResponse(id, RESTART_TIMED_OUT));
      }, this.options.restartWaitMs);
    }
    this.waiting.push({ message, timer });
  }

  private flushWaiting(): void {
    for (const { message, timer } of this.waiting.splice(0)) {
      if (timer) clearTimeout(timer);
      this.deliver(message, kindOf(message));
    }
  }

  private failWaiting(reason: string): void {
    for (const { message, timer } of this.waiting.splice(0)) {
      if (timer) clearTimeout(timer);
      if (kindOf(message) === 'request') this.toClient(errorResponse((message as JSONRPCRequest).id, reason));
    }
  }

  private childExited(child: StdioChild, exit: ChildExit): void {
    if (child !== this.child) return;
    this.child = null;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.replayId = null;
    if (this.state === 'closed') return;
    const uptimeMs = Date.now() - child.startedAt;
    this.log.warn({ pid: child.pid, code: exit.code, signal: exit.signal, uptimeMs }, 'stdio server exited');
    for (const id of this.inFlight.keys()) this.toClient(errorResponse(id, CHILD_EXITED));
    this.inFlight.clear();
    this.progressOwners.clear();
    this.serverRequests.clear();
    if (!this.initializeAnswered) {
      // Nothing to resume: the client never got a session it could use.
      this.log.warn('stdio server exited before it answered initialize; ending the session');
      this.failWaiting(CHILD_EXITED);
      void this.outbound.then(() => this.close());
      return;
    }
    if (uptimeMs >= STABLE_UPTIME_MS) this.delayMs = this.options.restart.initialDelayMs;
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    this.state = 'restarting';
    const delayMs = this.delayMs;
    this.delayMs = Math.min(delayMs * 2, this.options.restart.maxDelayMs);
    this.log.info({ delayMs }, 'restarting stdio server');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.restart();
    }, delayMs);
  }

  private get closed(): boolean {
    return this.state === 'closed';
  }

  private async restart(): Promise<void> {
    if (this.closed) return;
    let child: StdioChild;
    try {
      child = await this.spawn();
    } catch (err) {
      this.log.error({ err }, 'stdio server could not be restarted');
      if (!this.closed) this.scheduleRestart();
      return;
    }
    if (this.closed) {
      void child.stop();
      return;
    }
    this.child = child;
    this.replayId = `portcullis-replay-${randomUUID()}`;
    child.send({ ...this.initializeRequest!, id: this.replayId });
    this.handshakeTimer = setTimeout(() => {
      this.log.warn({ pid: child.pid }, 'restarted stdio server did not answer the replayed initialize in time; stopping it');
      void child.stop();
    }, this.options.restartWaitMs);
  }

  private handshakeDone(answer: JSONRPCMessage): void {
    this.replayId = null;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    const child = this.child!;
    if ('error' in answer) {
      this.log.warn({ pid: child.pid, error: answer.error }, 'restarted stdio server refused the replayed initialize; stopping it');
      void child.stop();
      return;
    }
    if (this.clientInitialized) child.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    this.state = 'running';
    this.log.info({ pid: child.pid }, 'stdio server restarted; session resumed');
    this.flushWaiting();
  }
}

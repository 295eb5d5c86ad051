/**
 * The stdio bridge: runs a route's local MCP server (`command: [npx, -y, some-server]`) and
 * exposes it as a Streamable HTTP MCP endpoint on a private unix socket, so the gateway forwards
 * to it exactly as to a remote server and keeps its whole pipeline (policy, audit, sessions,
 * list filtering) in front. One child per MCP session (a stdio server serves one client); see
 * stdio-session.ts for restarts and message routing, stdio-launch.ts for the child's
 * environment, docs/mcp-stdio.md for the operator's view.
 *
 * The socket lives in a fresh 0700 directory and is itself 0600: only the gateway's user can
 * reach the endpoint, so the bridge does no authentication, Host or Origin checks of its own.
 */
import { mkdtemp, chmod, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { isInitializeRequest, isJSONRPCRequest, type JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import { Secret } from '../../secret';
import { childEnvironment, resolveExecutable, type StdioLaunch } from './launch';
import { INTERNAL_ERROR, StdioSession, type RestartPolicy } from './session';

/** A route's stdio MCP server, as configured. */
export interface StdioServerSpec {
  /** Route name, for logs. */
  readonly route: string;
  /** argv; [0] is resolved on PATH (or is a path to an executable). */
  readonly command: readonly string[];
  /** Extra environment for the child; Secrets are revealed only into the child's environment. */
  readonly env: Readonly<Record<string, string | Secret>>;
  /** Working directory of the child; null for the gateway's. */
  readonly cwd: string | null;
  readonly restart: RestartPolicy;
}

/** Bounds of one bridge. */
export interface StdioBridgeLimits {
  /** Concurrent MCP sessions (= children); an initialize beyond it is answered 503. */
  readonly maxSessions: number;
  /** How long a request waits for a restarting child before it fails with -32603. */
  readonly restartWaitMs: number;
  /** Largest initialize request body read without a session, in bytes. */
  readonly maxInitializeBytes: number;
}

/** Default bounds. */
export const DEFAULT_STDIO_BRIDGE_LIMITS: StdioBridgeLimits = { maxSessions: 64, restartWaitMs: 10_000, maxInitializeBytes: 1024 * 1024 };

/** A running bridge. */
export interface StdioBridge {
  /** Unix socket the bridge listens on (in a fresh 0700 directory from mkdtemp; socket 0600). */
  readonly socketPath: string;
  /** HTTP path of the MCP endpoint on that socket: '/mcp'. */
  readonly path: string;
  /** PIDs of the running children (for tests and logs). */
  pids(): number[];
  /** Kills every child (SIGTERM, SIGKILL after 2 s), closes the listener, removes the directory. */
  close(): Promise<void>;
}

/** The bridge's configuration is invalid or its command cannot be found; thrown by `startStdioBridge`. */
export class StdioBridgeError extends Error {
  readonly route: string;

  constructor(route: string, message: string) {
    super(`route ${JSON.stringify(route)}: ${message}`);
    this.name = 'StdioBridgeError';
    this.route = route;
  }
}

const MCP_PATH = '/mcp';
/** sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS, with the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 103;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function sendJsonRpcError(
  res: http.ServerResponse,
  status: number,
  code: number,
  message: string,
  id: unknown = null,
  headers: http.OutgoingHttpHeaders = {},
): void {
  const body = JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** Reads a body up to `limit` bytes; null when it is longer. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function validate(spec: StdioServerSpec, limits: StdioBridgeLimits): Promise<StdioLaunch> {
  const fail = (message: string): never => {
    throw new StdioBridgeError(spec.route, message);
  };
  if (typeof spec.route !== 'string' || spec.route === '') throw new StdioBridgeError(String(spec.route), 'the route name must be a non-empty string');
  if (!Array.isArray(spec.command) || spec.command.length === 0) fail('command must be a non-empty list');
  for (const arg of spec.command) if (typeof arg !== 'string' || arg.includes('\0')) fail('command items must be strings without NUL');
  if (spec.command[0] === '') fail('command[0] must not be empty');
  for (const [name, value] of Object.entries(spec.env)) {
    if (!ENV_NAME.test(name)) fail(`env name ${JSON.stringify(name)} is not a valid variable name`);
    if (!(value instanceof Secret) && (typeof value !== 'string' || value.includes('\0'))) fail(`env ${name} must be a string without NUL or a secret`);
  }
  const { initialDelayMs, maxDelayMs } = spec.restart;
  if (!Number.isInteger(initialDelayMs) || initialDelayMs < 1) fail('restart.initialDelayMs must be an integer ≥ 1');
  if (!Number.isInteger(maxDelayMs) || maxDelayMs < initialDelayMs) fail('restart.maxDelayMs must be an integer ≥ restart.initialDelayMs');
  for (const [name, value] of Object.entries(limits)) if (!Number.isInteger(value) || value < 1) fail(`limit ${name} must be an integer ≥ 1`);
  if (spec.cwd !== null) {
    const isDir = await stat(spec.cwd).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isDir) fail(`cwd ${JSON.stringify(spec.cwd)} is not a directory`);
  }
  const env = childEnvironment(spec.env);
  const cwd = spec.cwd ?? process.cwd();
  const file = await resolveExecutable(spec.command[0], cwd, env.PATH);
  if (file === null) {
    fail(
      spec.command[0].includes('/')
        ? `command ${JSON.stringify(spec.command[0])} is not an executable file`
        : `command ${JSON.stringify(spec.command[0])} was not found on PATH`,
    );
  }
  return { file: file!, argv: [...spec.command], env, cwd: spec.cwd };
}

/**
 * Validates the spec (command[0] must resolve now, not on the first session), then listens on a
 * fresh unix socket. Children start per MCP session, on `initialize`.
 */
export async function startStdioBridge(spec: StdioServerSpec, log: Logger, limitOverrides: Partial<StdioBridgeLimits> = {}): Promise<StdioBridge> {
  const limits: StdioBridgeLimits = { ...DEFAULT_STDIO_BRIDGE_LIMITS, ...limitOverrides };
  const launch = await validate(spec, limits);
  const routeLog = log.child({ route: spec.route });

  const dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-stdio-'));
  const socketPath = path.join(dir, 'mcp.sock');
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    await rm(dir, { recursive: true, force: true });
    throw new StdioBridgeError(spec.route, `socket path ${socketPath} is too long for a unix socket; set TMPDIR to a shorter directory`);
  }

  /** Every session, from spawn to close. */
  const live = new Set<StdioSession>();
  /** Sessions whose child is being spawned (the cap counts them too). */
  let starting = 0;
  /** Sessions by the id the transport gave them. */
  const byId = new Map<string, StdioSession>();
  let closing = false;

  const openSession = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const body = await readBody(req, limits.maxInitializeBytes);
    if (body === null) return sendJsonRpcError(res, 413, -32600, `initialize request body over ${limits.maxInitializeBytes} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return sendJsonRpcError(res, 400, -32700, 'Parse error: Invalid JSON');
    }
    const message = parsed as JSONRPCRequest;
    if (!isJSONRPCRequest(parsed) || !isInitializeRequest(parsed)) return sendJsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    if (closing) return sendJsonRpcError(res, 503, INTERNAL_ERROR, 'the stdio bridge is shutting down', message.id);
    if (live.size + starting >= limits.maxSessions) {
      routeLog.warn({ maxSessions: limits.maxSessions }, 'stdio bridge at its session limit; initialize refused');
      return sendJsonRpcError(res, 503, INTERNAL_ERROR, `the stdio server has reached its limit of ${limits.maxSessions} sessions`, message.id);
    }
    let session: StdioSession;
    starting += 1;
    const opening = StdioSession.open({
      launch,
      restart: spec.restart,
      restartWaitMs: limits.restartWaitMs,
      log: routeLog,
      onOpened: (s) => byId.set(s.transport.sessionId!, s),
      onClosed: (s) => {
        live.delete(s);
        if (s.transport.sessionId !== undefined && byId.get(s.transport.sessionId) === s) byId.delete(s.transport.sessionId);
      },
    });
    try {
      session = await opening;
    } catch (err) {
      routeLog.error({ err }, 'stdio server could not be started');
      return sendJsonRpcError(res, 503, INTERNAL_ERROR, 'the stdio server could not be started', message.id);
    } finally {
      starting -= 1;
    }
    live.add(session);
    if (closing) {
      await session.close();
      return sendJsonRpcError(res, 503, INTERNAL_ERROR, 'the stdio bridge is shutting down', message.id);
    }
    await session.handle(req, res, message);
    // The transport refused the request (e.g. a bad Accept header) before it created the session.
    if (session.transport.sessionId === undefined) await session.close();
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const pathname = (req.url ?? '').split('?')[0];
    if (pathname !== MCP_PATH) return sendJsonRpcError(res, 404, -32000, 'Not found');
    const sessionId = req.headers['mcp-session-id'];
    if (sessionId !== undefined) {
      const session = typeof sessionId === 'string' ? byId.get(sessionId) : undefined;
      if (!session) return sendJsonRpcError(res, 404, -32001, 'Session not found');
      return session.handle(req, res);
    }
    if (req.method === 'POST') return openSession(req, res);
    if (req.method === 'GET' || req.method === 'DELETE') return sendJsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    return sendJsonRpcError(res, 405, -32000, 'Method not allowed.', null, { allow: 'GET, POST, DELETE' });
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      routeLog.error({ err }, 'stdio bridge request failed');
      if (!res.headersSent) sendJsonRpcError(res, 500, INTERNAL_ERROR, 'stdio bridge error');
      else res.destroy();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(socketPath, 0o600);
  } catch (err) {
    server.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // argv may carry flags an operator would rather not see in logs; the executable is enough.
  routeLog.info({ socketPath, executable: launch.file }, 'stdio bridge listening');

  let closed: Promise<void> | null = null;
  return {
    socketPath,
    path: MCP_PATH,
    pids: () => [...live].map((s) => s.pid).filter((pid): pid is number => pid !== null),
    close() {
      closed ??= (async () => {
        closing = true;
        const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all([...live].map((s) => s.close()));
        server.closeAllConnections();
        await listenerClosed;
        await rm(dir, { recursive: true, force: true });
        routeLog.info('stdio bridge closed');
      })();
      return closed;
    },
  };
}

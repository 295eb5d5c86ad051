/**
 * One stdio MCP server process: spawned in its own process group (so `npx`, shells and their
 * children are stopped together), spoken to in newline-delimited JSON-RPC on stdin/stdout,
 * its stderr logged line by line. Lines on stdout that are not JSON-RPC are logged and
 * dropped. Stopping sends SIGTERM to the group and SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createLineSplitter } from './line-splitter';
import type { StdioLaunch } from './launch';

/** A stderr line longer than this is logged cut (with `truncated: true`). */
export const STDERR_LINE_BYTES = 4096;
/** A stdout line (one JSON-RPC message) longer than this is a fault: the child is killed. */
export const STDOUT_LINE_BYTES = 16 * 1024 * 1024;
/** How long a stopped child gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 2000;

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when `stop()` asked for it. */
  readonly requested: boolean;
}

/** What the child's owner hears. */
export interface ChildHandlers {
  onMessage(message: JSONRPCMessage): void;
  /** Called once, after the process has exited and its pipes are drained. */
  onExit(exit: ChildExit): void;
}

/** A running child. */
export interface StdioChild {
  readonly pid: number;
  /** `Date.now()` at spawn. */
  readonly startedAt: number;
  /** Writes one message as a line on stdin; false when the child is gone. */
  send(message: JSONRPCMessage): boolean;
  /** SIGTERM to the process group, SIGKILL after `KILL_GRACE_MS`; resolves once it has exited. */
  stop(): Promise<ChildExit>;
}

const cut = (line: string) => (line.length > STDERR_LINE_BYTES ? line.slice(0, STDERR_LINE_BYTES) : line);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Signals the child's whole process group; false when the group no longer exists. */
function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Spawns the child. Rejects (with the spawn error, e.g. ENOENT or EACCES) when the process
 * could not be started.
 */
export async function spawnStdioChild(launch: StdioLaunch, handlers: ChildHandlers, baseLog: Logger): Promise<StdioChild> {
  const proc = spawn(launch.file, launch.argv.slice(1), {
    argv0: launch.argv[0],
    env: launch.env,
    cwd: launch.cwd ?? undefined,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    windowsHide: true,
  });
  await new Promise<void>((resolve, reject) => {
    proc.once('spawn', resolve);
    proc.once('error', reject);
  });
  const pid = proc.pid as number;
  const log = baseLog.child({ pid });
  return watch(proc, pid, handlers, log);
}

function watch(proc: ChildProcess, pid: number, handlers: ChildHandlers, log: Logger): StdioChild {
  const startedAt = Date.now();
  let requested = false;
  let leaderExited = false;
  let code: number | null = null;
  let signal: NodeJS.Signals | null = null;
  let resolveExited!: (exit: ChildExit) => void;
  const exited = new Promise<ChildExit>((resolve) => (resolveExited = resolve));

  proc.on('error', (err) => log.warn({ err }, 'stdio server process error'));
  proc.stdin!.on('error', (err) => log.debug({ err }, 'stdio server stdin closed'));

  const stdout = createLineSplitter({
    maxLineBytes: STDOUT_LINE_BYTES,
    onLine: (line) => {
      if (line.trim() === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        log.warn({ line: cut(line) }, 'stdio server wrote a non-JSON line on stdout; dropped');
        return;
      }
      if (!JSONRPCMessageSchema.safeParse(parsed).success) {
        log.warn({ line: cut(line) }, 'stdio server wrote a line on stdout that is not a JSON-RPC message; dropped');
        return;
      }
      // The parsed value, not the schema's output: the schema reorders keys.
      handlers.onMessage(parsed as JSONRPCMessage);
    },
    onOverflow: (head) => {
      log.error({ line: cut(head), limit: STDOUT_LINE_BYTES }, 'stdio server wrote a stdout line over the limit; killing it');
      signalGroup(pid, 'SIGKILL');
    },
  });
  const stderr = createLineSplitter({
    maxLineBytes: STDERR_LINE_BYTES,
    onLine: (line) => log.info({ line }, 'stdio server stderr'),
    onOverflow: (head) => log.info({ line: head, truncated: true }, 'stdio server stderr'),
  });
  proc.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
  proc.stdout!.on('end', () => stdout.end());
  proc.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  proc.stderr!.on('end', () => stderr.end());

  proc.once('exit', (exitCode, exitSignal) => {
    leaderExited = true;
    code = exitCode;
    signal = exitSignal;
    // An unasked exit leaves no use for whatever the server started: stop its group now.
    if (!requested) signalGroup(pid, 'SIGKILL');
    // Something outside the group may still hold the pipes; do not wait on it forever.
    setTimeout(() => {
      proc.stdout?.destroy();
      proc.stderr?.destroy();
    }, 500).unref();
  });
  proc.once('close', () => {
    const exit = { code, signal, requested };
    resolveExited(exit);
    handlers.onExit(exit);
  });

  return {
    pid,
    startedAt,
    send(message) {
      if (leaderExited || proc.stdin!.destroyed || !proc.stdin!.writable) return false;
      proc.stdin!.write(`${JSON.stringify(message)}\n`);
      return true;
    },
    async stop() {
      if (!requested) {
        requested = true;
        proc.stdin!.end();
        signalGroup(pid, 'SIGTERM');
        const deadline = Date.now() + KILL_GRACE_MS;
        while (Date.now() < deadline && !leaderExited) await sleep(25);
        // Whatever is left of the group now (a straggler, or the leader past its grace) is killed.
        // Waiting for the whole group would also wait on zombies that a non-reaping PID 1 (a
        // container without an init) never collects.
        signalGroup(pid, 'SIGKILL');
      }
      return exited;
    },
  };
}

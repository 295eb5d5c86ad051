/**
 * Child processes of the benchmark. Every target (upstream, bare proxy, gateway) and the load
 * generator runs in its own process so no two of them share an event loop; they talk to the
 * orchestrator over the IPC channel with the small messages typed here. On Linux each child can
 * be pinned to a CPU with `taskset`, so the load generator does not steal the proxy's core.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/** Sent by a target once it listens. */
export interface ReadyMessage {
  readonly type: 'ready';
  readonly url: string;
}

/** Sent by the orchestrator to ask a child to close and exit (so `--cpu-prof` gets written). */
export interface StopMessage {
  readonly type: 'stop';
}

/** A running child script. */
export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** The URL the child listens on, from its ready message ('' when it does not listen). */
  readonly url: string;
  /** Sends a request and resolves with the child's next reply. */
  ask<Reply>(message: unknown): Promise<Reply>;
  /** Asks the child to exit and waits for it (killing it after `ms`). */
  stop(ms?: number): Promise<void>;
}

/** How to start a child. */
export interface ChildOptions {
  /** Script name beside this file, without extension (e.g. 'upstream'). */
  readonly script: string;
  /** Label used in error messages. */
  readonly name: string;
  /** CPU to pin the child to, or null to let the scheduler place it. */
  readonly cpu: number | null;
  readonly env?: NodeJS.ProcessEnv;
  readonly execArgv?: readonly string[];
}

/** True when `taskset` can pin processes on this machine. */
export function canPin(): boolean {
  return process.platform === 'linux' && spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0;
}

/** Starts `bench/<script>.js` under the current Node, optionally pinned to one CPU, and waits until it is ready. */
export function startChild(options: ChildOptions): Promise<Child> {
  const script = path.join(__dirname, `${options.script}.js`);
  const nodeArgs = [...(options.execArgv ?? []), script];
  const [cmd, args] = options.cpu === null ? [process.execPath, nodeArgs] : ['taskset', ['-c', String(options.cpu), process.execPath, ...nodeArgs]];
  const proc = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...options.env } });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));

  const nextMessage = <T>(): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null, signal: string | null) => {
        proc.off('message', onMessage);
        reject(new Error(`bench child "${options.name}" exited (code ${code}, signal ${signal}) before answering`));
      };
      const onMessage = (m: unknown) => {
        proc.off('exit', onExit);
        resolve(m as T);
      };
      proc.once('message', onMessage);
      proc.once('exit', onExit);
    });

  const make = (url: string): Child => ({
    name: options.name,
    process: proc,
    url,
    ask<Reply>(message: unknown) {
      const reply = nextMessage<Reply>();
      proc.send(message as object);
      return reply;
    },
    async stop(ms = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      if (proc.connected) proc.send({ type: 'stop' } satisfies StopMessage);
      const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(timer);
    },
  });

  return nextMessage<ReadyMessage>().then((m) => make(m.url));
}

/** In a child: reports readiness, and runs `close` then exits when the orchestrator says stop. */
export function serveChild(url: string, close: () => Promise<void>): void {
  process.on('message', (m: StopMessage) => {
    if (m?.type !== 'stop') return;
    void close().finally(() => process.exit(0));
  });
  // The orchestrator going away (Ctrl-C, crash) must not leave targets behind.
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'ready', url } satisfies ReadyMessage);
}

/**
 * A real `portcullis start` child process, optionally behind a wrapper command (`unshare` for a
 * new PID namespace, a shell that never reaps it), for tests that kill, stop and restart it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { OPA } from './harness';

export const CLI = path.resolve(__dirname, '../../dist/src/cli/main.js');

/** A started gateway process. */
export interface GatewayProcess {
  /** The spawned process (the wrapper when there is one). */
  readonly child: ChildProcess;
  readonly url: string;
  /** The adminUrl when the config enables it. */
  readonly adminUrl: string | null;
  /** The gateway's own pid as this machine sees it (the wrapper's descendant when wrapped). */
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Milliseconds from spawn to "portcullis started". */
  readonly startedAfterMs: number;
  stdout(): string;
  stderr(): string;
}

/** Spawn options. */
export interface SpawnOptions {
  /** Wrapper argv before `node CLI start --config FILE`, e.g. ['unshare', '--pid', '--fork']. */
  readonly wrapper?: readonly string[];
  /** A shell command line instead, with $GATEWAY standing for the quoted gateway command. */
  readonly shell?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Extra node flags (e.g. --max-old-space-size). */
  readonly nodeArgs?: readonly string[];
  readonly timeoutMs?: number;
}

/** Processes still running, for afterAll to kill. */
export const liveGateways = new Set<ChildProcess>();

/** The children of a process (Linux /proc). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The single-letter state of a process (R, S, Z, ...), or null when it is gone. */
export function processState(pid: number): string | null {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Finds the node process running the CLI among `pid` and its descendants. */
function gatewayPid(pid: number): number | null {
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv[0] === process.execPath && argv.includes(CLI)) return p;
    } catch {
      /* gone */
    }
    queue.push(...childPids(p));
  }
  return null;
}

/** Spawns `portcullis start --config configFile` and waits for "portcullis started". */
export function spawnGateway(configFile: string, o: SpawnOptions = {}): Promise<GatewayProcess> {
  const argv = [process.execPath, ...(o.nodeArgs ?? []), CLI, 'start', '--config', configFile];
  const env = { ...process.env, PORTCULLIS_OPA: OPA, ...o.env };
  const began = performance.now();
  const child = o.shell
    ? spawn('sh', ['-c', o.shell.replace('$GATEWAY', argv.map((a) => `'${a}'`).join(' '))], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(o.wrapper?.[0] ?? argv[0], [...(o.wrapper?.slice(1) ?? []), ...(o.wrapper ? argv : argv.slice(1))], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  liveGateways.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      liveGateways.delete(child);
      resolve({ code, signal });
    }),
  );
  const timeoutMs = o.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not start in ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    const onData = () => {
      if (!/"msg":"portcullis started"/.test(out)) return;
      const url = /"url":"(http:\/\/[^"]+)"/.exec(out)?.[1];
      if (!url) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      const adminUrl = /"admin":"(http:\/\/[^"]+)"/.exec(out)?.[1] ?? null;
      const pid = o.wrapper || o.shell ? gatewayPid(child.pid!) : child.pid!;
      if (!pid) return reject(new Error('cannot find the gateway process'));
      resolve({ child, url, adminUrl, pid, exited, startedAfterMs: performance.now() - began, stdout: () => out, stderr: () => err });
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        Object.assign(new Error(`the gateway exited (code ${code}, signal ${signal}) before starting\nstdout: ${out}\nstderr: ${err}`), {
          code,
          stdout: out,
          stderr: err,
        }),
      );
    });
  });
}

/** What a client saw of one call. */
export interface CallResult {
  readonly status: number | null;
  readonly decisionId: string | null;
  readonly body: string;
  readonly error?: string;
}

/** One GET (or a request with `body`); never rejects; gives up after `timeoutMs`. */
export function callOnce(url: string, p: string, key: string, o: { agent?: http.Agent; timeoutMs?: number; body?: string } = {}): Promise<CallResult> {
  const u = new URL(url);
  return new Promise((resolve) => {
    let status: number | null = null;
    let decisionId: string | null = null;
    let body = '';
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (o.body) headers['content-type'] = 'application/json';
    const req = http.request(
      { host: u.hostname, port: u.port, method: o.body ? 'POST' : 'GET', path: p, headers, agent: o.agent ?? false, timeout: o.timeoutMs ?? 10_000 },
      (res) => {
        status = res.statusCode ?? null;
        const id = res.headers['x-portcullis-decision-id'];
        decisionId = typeof id === 'string' ? id : null;
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => resolve({ status, decisionId, body }));
        res.on('error', (e) => resolve({ status, decisionId, body, error: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => resolve({ status, decisionId, body, error: e.message }));
    req.end(o.body);
  });
}

/** Runs `portcullis audit verify DIR --json`. */
export function verifyCli(dir: string): Promise<{ code: number; report: { records: number; lastSeq: number; problems: unknown[]; verdict?: string } }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, 'audit', 'verify', dir, '--json'], (e, stdout) =>
      resolve({ code: e ? (e as { code: number }).code : 0, report: JSON.parse(stdout) }),
    ),
  );
}

/** Every record of the trail in `dir`, in order. */
export function trailRecords(dir: string): Record<string, any>[] {
  return readdirSync(dir)
    .filter((f) => /^audit-\d{8}\.jsonl$/.test(f))
    .sort()
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').replace(/\0+$/, '').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** The policy the process tests run: the agent `bot` may make any call. */
export const BOT_POLICY = 'package portcullis\n\ndecision := {"allow": input.agent.id == "bot", "reasons": ["bot"]}\n';

/** A scratch directory for tests that spawn gateways, with BOT_POLICY in its policies/. */
export function scratchDir(prefix: string): string {
  const base = mkdtempSync(path.join(os.tmpdir(), `portcullis-${prefix}-`));
  mkdirSync(path.join(base, 'policies'));
  writeFileSync(path.join(base, 'policies', 'p.rego'), BOT_POLICY);
  return base;
}

/** For afterAll: kills every gateway still running and removes the scratch directory. */
export function killGatewaysAndRemove(base: string): void {
  for (const c of liveGateways) c.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
}

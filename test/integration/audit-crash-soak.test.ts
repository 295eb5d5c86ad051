/**
 * G3/G4 under crashes: the gateway runs as a real `portcullis start` child process and is
 * killed with SIGKILL, several times, while 32 clients keep calls in flight, each restart
 * reopening the same audit directory. Some rounds also leave a torn final line behind the
 * kill (the bytes of a batch that reached the file but was never synced or acknowledged, as a
 * power cut mid-write would), so start-up recovery runs too. After a last clean start and
 * SIGTERM stop, every decision a client saw must be in the trail with its verdict, every call
 * the upstream received must have its allow record, each torn tail must have been moved
 * aside and recorded, and `portcullis audit verify` must pass.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { segmentText } from '../helpers/audit';
import { OPA, oneRouteYaml, startUpstream, type Upstream } from '../helpers/harness';

const CLI = path.resolve(__dirname, '../../dist/src/cli/main.js');
const KEY = 'soak-agent-key';
/** Kill rounds; with the final clean round the whole file runs in about 10–20 s. */
const ROUNDS = 12;
const CLIENTS = 32;
/** Rounds (0-based) after whose kill a torn final line is left in the newest segment. */
const TORN_ROUNDS = new Set([2, 5, 9]);
/** Kills after which the newest segment had a zero tail (the writer's preallocation, docs/audit.md). */
let killedWithZeroTail = 0;

/** A call a client sent and what it saw. */
interface Seen {
  readonly round: number;
  /** From `x-portcullis-decision-id`; null when the call failed before any answer arrived. */
  readonly decisionId: string | null;
  readonly status: number | null;
  /** What the client asked for, to know which verdict to expect. */
  readonly kind: 'read' | 'write' | 'delete' | 'stranger';
}

/** What one kill round did. */
interface Round {
  readonly killAfterMs: number;
  readonly acknowledged: number;
  /** Calls that got no answer: in flight when the gateway died. */
  readonly unanswered: number;
  readonly tornFragment: string | null;
}

const base = mkdtempSync(path.join(os.tmpdir(), 'portcullis-soak-'));
const auditDir = path.join(base, 'audit');
const configFile = path.join(base, 'portcullis.yaml');
const seen: Seen[] = [];
const rounds: Round[] = [];
let upstream: Upstream;
let finalExit: { code: number | null; stdout: string };
/** Gateway processes not yet exited, killed in afterAll if a round failed half-way. */
const live = new Set<ChildProcess>();

/** A running `portcullis start` child. */
interface GatewayProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
}

function startGatewayProcess(): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
    env: { ...process.env, PORTCULLIS_OPA: OPA },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  live.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not start in 20 s\nstdout: ${out}\nstderr: ${err}`));
    }, 20_000);
    const onData = () => {
      const m = /"msg":"portcullis started"/.test(out) ? /"url":"(http:\/\/[^"]+)"/.exec(out) : null;
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve({ child, url: m[1], exited, stdout: () => out });
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (code ${code}, signal ${signal}) before starting\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}

const KINDS: readonly Seen['kind'][] = ['read', 'read', 'read', 'write', 'delete', 'stranger'];

/** One call; resolves with what the client saw (never rejects). */
function call(url: string, agent: http.Agent, kind: Seen['kind'], n: number, round: number): Promise<Seen> {
  const u = new URL(url);
  const body = kind === 'write' ? JSON.stringify({ n, note: 'soak' }) : undefined;
  const headers: Record<string, string> = { authorization: `Bearer ${kind === 'stranger' ? 'not-a-known-key' : KEY}` };
  if (body) headers['content-type'] = 'application/json';
  const method = kind === 'write' ? 'POST' : kind === 'delete' ? 'DELETE' : 'GET';
  return new Promise((resolve) => {
    let decisionId: string | null = null;
    let status: number | null = null;
    const done = () => resolve({ round, decisionId, status, kind });
    const req = http.request({ host: u.hostname, port: u.port, method, path: `/up/items/${round}-${n}`, headers, agent }, (res) => {
      // The answer's headers are what the client saw: from here the decision is acknowledged.
      status = res.statusCode ?? null;
      const id = res.headers['x-portcullis-decision-id'];
      decisionId = typeof id === 'string' ? id : null;
      res.resume();
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', done);
    req.end(body);
  });
}

/**
 * Keeps CLIENTS calls in flight until `stop()` says so; returns everything seen. `firstAck`
 * resolves at the first acknowledged decision, so that a kill on a slow machine still comes after
 * some (instead of a fixed delay that a loaded machine can spend before its first answer).
 */
function load(url: string, round: number): { stop(): void; finished: Promise<Seen[]>; firstAck: Promise<void> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  let stopped = false;
  let n = 0;
  const results: Seen[] = [];
  let acked: () => void = () => undefined;
  const firstAck = new Promise<void>((resolve) => (acked = resolve));
  const client = async (c: number) => {
    for (let i = 0; !stopped; i++) {
      const s = await call(url, agent, KINDS[(c + i) % KINDS.length], n++, round);
      results.push(s);
      if (s.decisionId && s.status !== null && s.status < 300) acked();
    }
  };
  const finished = Promise.all(Array.from({ length: CLIENTS }, (_x, c) => client(c))).then(() => {
    agent.destroy();
    return results;
  });
  return { stop: () => (stopped = true), finished, firstAck };
}

/** `promise`, or a failure saying `why` after `ms`. */
async function within(promise: Promise<void>, ms: number, why: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(why)), ms)));
  try {
    await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function segments(): string[] {
  return readdirSync(auditDir)
    .filter((f) => /^audit-\d{8}\.jsonl$/.test(f))
    .sort();
}

/**
 * Leaves a torn final line: the start of a record that reached the file but not the disk's
 * promise. It goes where the writer's next batch would have: right after the last record,
 * inside the zeros the writer keeps ahead of it (its preallocation), or at the end of the file.
 */
function tearTail(round: number): string | null {
  const file = path.join(auditDir, segments().at(-1)!);
  const text = segmentText(file);
  if (statSync(file).size > Buffer.byteLength(text)) killedWithZeroTail++;
  // SIGKILL can itself cut a large write short; then there is a torn line already.
  if (!text.endsWith('\n')) return null;
  const last = text.slice(text.lastIndexOf('\n', text.length - 2) + 1, -1);
  const seq = (JSON.parse(last) as { seq: number }).seq + 1;
  const prev = createHash('sha256').update(last).digest('hex');
  const whole = JSON.stringify({
    seq,
    prev,
    type: 'decision',
    time: new Date().toISOString(),
    decision_id: `torn-${round}`,
    agent: 'bot',
    route: 'up',
    method: 'GET',
  });
  // Cut inside the record, after its decision id, so the fragment is unlike any real line.
  const fragment = whole.slice(0, whole.indexOf('"agent"') + 3 + round);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, fragment, Buffer.byteLength(text));
  } finally {
    closeSync(fd);
  }
  return fragment;
}

function records(): Record<string, any>[] {
  return segments().flatMap((f) =>
    segmentText(path.join(auditDir, f))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, any>),
  );
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm test does)`);
  upstream = await startUpstream();
  mkdirSync(path.join(base, 'policies'));
  writeFileSync(
    path.join(base, 'policies', 'p.rego'),
    'package portcullis\n\ndefault decision := {"allow": false, "reasons": ["only bot reads and writes"]}\n\ndecision := {"allow": true, "reasons": ["bot"]} if {\n\tinput.agent.id == "bot"\n\tinput.request.method in {"GET", "POST"}\n}\n',
  );
  writeFileSync(configFile, `${oneRouteYaml({ upstream: upstream.url, agentKey: KEY, durability: 'strict' })}\nlog: { level: info }\n`);

  for (let round = 0; round < ROUNDS; round++) {
    const gw = await startGatewayProcess();
    const running = load(gw.url, round);
    await within(running.firstAck, 15_000, `round ${round}: no call was acknowledged within 15 s of the start`);
    const killAfterMs = 100 + Math.floor(Math.random() * 500);
    await new Promise((r) => setTimeout(r, killAfterMs));
    gw.child.kill('SIGKILL');
    running.stop();
    const { signal } = await gw.exited;
    if (signal !== 'SIGKILL') throw new Error(`round ${round}: the gateway exited by itself (${signal}) before it was killed`);
    const got = await running.finished;
    seen.push(...got);
    const tornFragment = TORN_ROUNDS.has(round) ? tearTail(round) : null;
    rounds.push({ killAfterMs, acknowledged: got.filter((s) => s.decisionId).length, unanswered: got.filter((s) => s.status === null).length, tornFragment });
  }

  // A last clean start (which recovers the last kill), one call, and a graceful stop. The call
  // also makes sure the CLI has installed its SIGTERM handler: it does so only after logging
  // "portcullis started", and a SIGTERM sent in between takes the default action and kills it.
  const gw = await startGatewayProcess();
  const last = await call(gw.url, new http.Agent(), 'read', 0, ROUNDS);
  seen.push(last);
  if (last.status !== 200) throw new Error(`the restarted gateway answered ${last.status}`);
  gw.child.kill('SIGTERM');
  const { code } = await gw.exited;
  finalExit = { code, stdout: gw.stdout() };
}, 120_000);

afterAll(async () => {
  for (const child of live) child.kill('SIGKILL');
  await upstream?.close();
  rmSync(base, { recursive: true, force: true });
});

test('the soak did what it claims: every round killed a loaded gateway with calls in flight', () => {
  expect(rounds).toHaveLength(ROUNDS);
  for (const r of rounds) expect({ ...r, acknowledged: r.acknowledged > 0 }).toMatchObject({ acknowledged: true });
  // A kill with nothing in flight proves little; at 32 clients it should happen every round,
  // but one quiet round must not fail the suite.
  expect(rounds.filter((r) => r.unanswered > 0).length).toBeGreaterThanOrEqual(ROUNDS - 1);
  expect(finalExit.code).toBe(0);
  expect(finalExit.stdout).toContain('portcullis stopped');
  const starts = records().filter((r) => r.type === 'gateway_start');
  const stops = records().filter((r) => r.type === 'gateway_stop');
  expect(starts).toHaveLength(ROUNDS + 1);
  expect(stops).toHaveLength(1);
});

test('G3, G4: after repeated kill -9 under load, every decision a client saw is in the trail with its verdict', () => {
  const decisions = new Map<string, Record<string, any>>();
  for (const r of records()) if (r.type === 'decision') decisions.set(r.decision_id, r);
  const acknowledged = seen.filter((s) => s.decisionId !== null);
  const missing = acknowledged.filter((s) => !decisions.has(s.decisionId!));
  expect(missing).toEqual([]);
  for (const s of acknowledged) {
    const r = decisions.get(s.decisionId!)!;
    const expected = s.kind === 'read' || s.kind === 'write' ? 'allow' : 'deny';
    expect({ id: s.decisionId, kind: s.kind, decision: r.decision }).toEqual({ id: s.decisionId, kind: s.kind, decision: expected });
    if (expected === 'deny') expect({ id: s.decisionId, status: r.status }).toEqual({ id: s.decisionId, status: s.status });
  }
  // Only the gateway's answers carry a decision id; every answer the clients got carried one.
  expect(seen.filter((s) => s.status !== null && s.decisionId === null)).toEqual([]);
});

test('G3: nothing the upstream received was forwarded without its allow record on disk', () => {
  const decisions = new Map<string, string>();
  for (const r of records()) if (r.type === 'decision') decisions.set(r.decision_id, r.decision);
  expect(upstream.received.length).toBeGreaterThan(0);
  const unrecorded = upstream.received
    .map((x) => ({ url: x.url, id: x.headers['x-portcullis-decision-id'] as string | undefined }))
    .filter((x) => x.id === undefined || decisions.get(x.id) !== 'allow');
  expect(unrecorded).toEqual([]);
});

test('each torn final line was moved aside (never deleted), recorded, and the chain continued', () => {
  const torn = readdirSync(auditDir).filter((f) => f.includes('.torn-'));
  const recovered = records().filter((r) => r.type === 'recovered_torn_tail');
  const injected = rounds.map((r) => r.tornFragment).filter((f): f is string => f !== null);
  expect(injected.length).toBeGreaterThanOrEqual(1);
  // The writer preallocates (except on tmpfs): the torn lines were left inside its zero tail.
  if (statfsSync(auditDir).type !== 0x01021994) expect(killedWithZeroTail).toBeGreaterThanOrEqual(1);
  // One record per torn file, naming it and its size; at most one partial line in each.
  expect(recovered.map((r) => r.moved_to).sort()).toEqual(torn.sort());
  for (const r of recovered) {
    const bytes = readFileSync(path.join(auditDir, r.moved_to));
    expect({ file: r.moved_to, bytes: bytes.length, newline: bytes.includes(0x0a) }).toEqual({ file: r.moved_to, bytes: r.bytes, newline: false });
  }
  const tornText = torn.map((f) => readFileSync(path.join(auditDir, f), 'utf8'));
  for (const fragment of injected) expect(tornText.some((t) => t.endsWith(fragment))).toBe(true);
  // The torn bytes never made it back into a segment.
  const trail = segments()
    .map((f) => readFileSync(path.join(auditDir, f), 'utf8'))
    .join('');
  for (const fragment of injected) expect(trail.includes(fragment)).toBe(false);
});

test('G3: `portcullis audit verify` passes on the trail after the clean stop (seq gap-free, chain intact)', async () => {
  const r = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(process.execPath, [CLI, 'audit', 'verify', auditDir, '--json'], (err, stdout) =>
      resolve({ code: err ? (err as { code: number }).code : 0, stdout }),
    ),
  );
  const report = JSON.parse(r.stdout) as { records: number; lastSeq: number; problems: unknown[] };
  expect(report.problems).toEqual([]);
  expect(r.code).toBe(0);
  expect(report.lastSeq).toBe(report.records);
  expect(report.records).toBe(records().length);
  const seqs = records().map((x) => x.seq as number);
  expect(seqs).toEqual(seqs.map((_x, i) => i + 1));
});

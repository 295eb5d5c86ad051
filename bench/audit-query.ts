/**
 * `node dist/bench/audit-query.js`: how fast `portcullis audit query` and `audit export` read a
 * large trail. Generates a synthetic trail of BENCH_RECORDS records (1,000,000) in a temporary
 * directory, with the real line shape (record.ts's serializer) and a valid hash chain, split into
 * segments of 250,000 records; then runs the built CLI as a user would, output to /dev/null,
 * and prints wall time and records/s for each case. The trail is a repeating mix of 20 agents,
 * 6 routes, 70 % allowed calls each followed by its outcome and 30 % denials, with a
 * gateway_start and a policy_loaded at the start.
 *
 * Settings (environment): BENCH_RECORDS (1000000), BENCH_KEEP=1 keeps the trail directory.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GENESIS_HASH, serializeRecord, type AuditEvent, type ChainedRecord } from '../src/audit/record';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const PER_SEGMENT = 250_000;
const AGENTS = Array.from({ length: 20 }, (_, i) => `agent-${String(i).padStart(2, '0')}`);
const ROUTES = ['github', 'jira', 'slack', 'billing', 'search', 'storage'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const DENY_CODES = ['PC_POLICY_DENIED', 'PC_POLICY_DENIED', 'PC_POLICY_DENIED', 'PC_ROUTE_NOT_FOUND', 'PC_UNKNOWN_AGENT'];

/** Writes the trail; returns the decision id in the middle (for a one-call query). */
export function generate(dir: string): { middleId: string; records: number } {
  const revision = `sha256:${createHash('sha256').update('bench-policy').digest('hex')}`;
  const start = Date.now() - 6 * 86_400_000; // spread over six days
  let seq = 0;
  let prev = GENESIS_HASH;
  let segment = 0;
  let fd = -1;
  let pending: string[] = [];
  let middleId = '';
  const flush = () => {
    if (pending.length) writeSync(fd, pending.join(''));
    pending = [];
  };
  const append = (event: AuditEvent) => {
    if (seq % PER_SEGMENT === 0) {
      if (fd !== -1) {
        flush();
        closeSync(fd);
      }
      segment++;
      fd = openSync(path.join(dir, `audit-${String(segment).padStart(8, '0')}.jsonl`), 'w');
    }
    seq++;
    const line = serializeRecord({ seq, prev, ...event } as ChainedRecord);
    prev = createHash('sha256').update(line).digest('hex');
    pending.push(`${line}\n`);
    if (pending.length >= 10_000) flush();
  };
  const at = (i: number) => new Date(start + Math.floor((i * 6 * 86_400_000) / RECORDS)).toISOString();
  append({ type: 'policy_loaded', time: at(0), revision, previous: null });
  append({
    type: 'gateway_start',
    time: at(0),
    version: '0.1.0',
    pid: 1,
    config: '/etc/portcullis/portcullis.yaml',
    policy_revision: revision,
    listen: 'http://127.0.0.1:8080',
  });
  let call = 0;
  while (seq < RECORDS) {
    call++;
    const id = randomUUID();
    const agent = AGENTS[(call * 7) % AGENTS.length];
    const route = ROUTES[call % ROUTES.length];
    const method = METHODS[(call * 5) % METHODS.length];
    const path_ = `/repos/acme/project-${call % 97}/issues/${call % 1013}`;
    const time = at(seq);
    if (seq >= RECORDS / 2 && !middleId) middleId = id;
    if (call % 10 < 7 && seq + 1 < RECORDS) {
      append({
        type: 'decision',
        time,
        decision_id: id,
        agent,
        route,
        method,
        path: path_,
        decision: 'allow',
        reasons: ['read access to the project'],
        policy_revision: revision,
        credential: `${route}-token`,
      });
      append({ type: 'outcome', time, decision_id: id, status: 200, latency_ms: 3 + (call % 40) });
    } else {
      const code = DENY_CODES[call % DENY_CODES.length];
      append({
        type: 'decision',
        time,
        decision_id: id,
        agent: code === 'PC_UNKNOWN_AGENT' ? null : agent,
        route: code === 'PC_ROUTE_NOT_FOUND' ? null : route,
        method,
        path: path_,
        decision: 'deny',
        reasons: code === 'PC_POLICY_DENIED' ? [`${method} is not allowed on ${route} for ${agent}`] : ['refused before the policy'],
        code,
        status: code === 'PC_POLICY_DENIED' ? 403 : code === 'PC_ROUTE_NOT_FOUND' ? 404 : 401,
        policy_revision: revision,
        credential: null,
      });
    }
  }
  flush();
  closeSync(fd);
  return { middleId, records: seq };
}

function timeCli(args: string[]): number {
  const t0 = process.hrtime.bigint();
  execFileSync(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1 << 30 });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function main(): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-audit-'));
  try {
    const g0 = process.hrtime.bigint();
    const { middleId, records } = generate(dir);
    const bytes = Array.from(
      { length: Math.ceil(records / PER_SEGMENT) },
      (_, i) => statSync(path.join(dir, `audit-${String(i + 1).padStart(8, '0')}.jsonl`)).size,
    ).reduce((a, b) => a + b, 0);
    console.log(
      `trail: ${records} records, ${(bytes / 1e6).toFixed(0)} MB in ${Math.ceil(records / PER_SEGMENT)} segments, generated in ${(Number(process.hrtime.bigint() - g0) / 1e9).toFixed(1)} s (${dir})`,
    );
    const cases: [string, string[]][] = [
      ['one call (--decision-id)', ['audit', 'query', dir, '--decision-id', middleId, '--format', 'jsonl']],
      ['one agent (--agent, 5 % of calls)', ['audit', 'query', dir, '--agent', 'agent-07', '--format', 'jsonl']],
      ['one agent, table, with outcomes', ['audit', 'query', dir, '--agent', 'agent-07', '--with-outcome', '--format', 'table']],
      ['full scan, nothing matches (--reason)', ['audit', 'query', dir, '--reason', 'no-such-reason']],
      ['full scan, time window (--since 3d)', ['audit', 'query', dir, '--since', '3d', '--format', 'jsonl']],
      ['all decisions as CSV', ['audit', 'query', dir, '--format', 'csv']],
      ['export ocsf, all decisions', ['audit', 'export', dir, '--format', 'ocsf']],
      ['export ecs, all decisions', ['audit', 'export', dir, '--format', 'ecs']],
    ];
    console.log(`${'case'.padEnd(42)} ${'seconds'.padStart(8)} ${'records/s scanned'.padStart(18)}`);
    for (const [name, args] of cases) {
      const s = timeCli(args);
      console.log(
        `${name.padEnd(42)} ${s.toFixed(2).padStart(8)} ${Math.round(records / s)
          .toLocaleString('en-US')
          .padStart(18)}`,
      );
    }
  } finally {
    if (process.env.BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) main();

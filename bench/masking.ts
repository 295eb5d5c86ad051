/**
 * `npm run bench:masking`: what masking every encoded form of the credential costs, in one run.
 *
 * 1. The masking work alone, in this process, for the two workloads' answers: the previous
 *    masker (exact bytes, one indexOf per needle: bench/baseline-masker.ts) against today's
 *    (every encoded form, one Wu–Manber scan), on the answer of the 1 KB POST (a small JSON body
 *    and its headers, masked whole) and on a 1 MiB streamed answer (16 chunks of 64 KiB).
 * 2. The whole gateway's CPU per call on the same two workloads, measured on the real gateway
 *    (strict audit) in its own process, with the upstream beside it, both pinned to CPU 1
 *    when the machine can pin, and the load from this process on CPU 0.
 *
 * The added cost of the new needle set is (1)'s difference divided by (2): the share of the
 * gateway's CPU per call that the extra needles take. Goal (issue 9): at most 5%.
 *
 * Settings: BENCH_DURATION seconds per load run (5), BENCH_CONNECTIONS (16).
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { ResponseMasker } from '../src/credential-injector/masker';
import { BaselineMasker } from './baseline-masker';
import { canPin, startChild } from './child';
import { processCpuSeconds } from './cpu-usage';
import { ROUTE_PREFIX } from './gateway';
import { describeEnvironment } from './report';
import { numberSetting } from './settings';
import { STREAM_PATH } from './upstream';

const ROOT = path.resolve(__dirname, '..', '..');
const AGENT_KEY = 'bench-agent-key-not-a-secret';
const UPSTREAM_TOKEN = 'bench-upstream-token-not-a-secret';
const NOTE = JSON.stringify({ kind: 'note', text: 'x'.repeat(1024 - 25) });

/** Microseconds per call of `f`, best of 5 batches after a warm-up. */
async function timeIt(f: () => void | Promise<void>, calls: number): Promise<number> {
  for (let i = 0; i < Math.min(calls, 200); i++) await f();
  let best = Infinity;
  for (let batch = 0; batch < 5; batch++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < calls; i++) await f();
    const d = process.cpuUsage(t0);
    best = Math.min(best, (d.user + d.system) / calls);
  }
  return best;
}

const SMALL = Buffer.from('{"ok":true}');
const HEADERS: Record<string, string> = {
  'content-type': 'application/json',
  'content-length': '11',
  date: new Date().toUTCString(),
  connection: 'keep-alive',
  'keep-alive': 'timeout=60',
  'x-bench-saw-credential': '1',
};
const CHUNK = Buffer.from(
  JSON.stringify({ items: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'] })) })
    .padEnd(65536, ' ')
    .slice(0, 65536),
);

async function streamThrough(t: import('node:stream').Transform): Promise<void> {
  const chunks = Array.from({ length: 16 }, () => Buffer.from(CHUNK));
  await pipeline(Readable.from(chunks), t, new Writable({ write: (_c, _e, d) => d() }));
}

async function maskingAlone(): Promise<Record<string, number>> {
  const baseline = new BaselineMasker([UPSTREAM_TOKEN]);
  const current = new ResponseMasker([UPSTREAM_TOKEN], [`Bearer ${UPSTREAM_TOKEN}`]);
  const smallOld = await timeIt(() => {
    const body = Buffer.from(SMALL);
    baseline.maskBuffer(body);
    for (const k in HEADERS) baseline.maskString(HEADERS[k]);
  }, 20000);
  const smallNew = await timeIt(() => {
    const body = Buffer.from(SMALL);
    current.maskBody(body, false);
    for (const k in HEADERS) if (!current.nameHasSecret(k)) current.maskString(HEADERS[k]);
  }, 20000);
  const bigOld = await timeIt(() => streamThrough(baseline.stream()), 50);
  const bigNew = await timeIt(() => streamThrough(current.stream({ sse: false })), 50);
  return { needles: current.needleCount, smallOld, smallNew, bigOld, bigNew };
}

/** Sends calls on `connections` connections for `seconds`; returns how many completed. */
async function load(url: string, seconds: number, connections: number, request: { method: 'GET' | 'POST'; path: string; body?: string }): Promise<number> {
  const pool = new Pool(url, { connections });
  const until = Date.now() + seconds * 1000;
  let done = 0;
  const worker = async () => {
    while (Date.now() < until) {
      const r = await pool.request({
        method: request.method,
        path: request.path,
        body: request.body,
        headers: { authorization: `Bearer ${AGENT_KEY}`, 'content-type': 'application/json' },
      });
      let bytes = 0;
      for await (const c of r.body) bytes += (c as Buffer).length;
      if (r.statusCode !== 200 || bytes === 0) throw new Error(`unexpected answer ${r.statusCode} (${bytes} bytes) on ${request.path}`);
      done++;
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  await pool.close();
  return done;
}

async function main(): Promise<void> {
  const seconds = numberSetting('BENCH_DURATION', 5);
  const connections = numberSetting('BENCH_CONNECTIONS', 16);
  const pin = canPin();
  const env = { BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN };
  const alone = await maskingAlone();

  const work = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-masking-'));
  const upstream = await startChild({ script: 'upstream', name: 'upstream', cpu: pin ? 1 : null, env });
  const gateway = await startChild({
    script: 'gateway',
    name: 'portcullis',
    cpu: pin ? 1 : null,
    env: { ...env, BENCH_WORK_DIR: work, BENCH_UPSTREAM_URL: upstream.url, BENCH_AGENT_KEY: AGENT_KEY, BENCH_DURABILITY: 'strict' },
  });
  const perCall: Record<string, number> = {};
  try {
    for (const [name, req] of [
      ['post1k', { method: 'POST' as const, path: `${ROUTE_PREFIX}items`, body: NOTE }],
      ['stream1m', { method: 'GET' as const, path: STREAM_PATH }],
    ] as const) {
      await load(gateway.url, 1, connections, req);
      const c0 = processCpuSeconds(gateway.process.pid!) ?? NaN;
      const calls = await load(gateway.url, seconds, connections, req);
      const c1 = processCpuSeconds(gateway.process.pid!) ?? NaN;
      perCall[name] = ((c1 - c0) * 1e6) / calls;
    }
  } finally {
    await gateway.stop();
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const result = {
    date: new Date().toISOString(),
    environment: describeEnvironment(ROOT, process.env.PORTCULLIS_OPA ?? 'opa'),
    needles: alone.needles,
    post1k: {
      maskOldUs: alone.smallOld,
      maskNewUs: alone.smallNew,
      gatewayCpuPerCallUs: perCall.post1k,
      addedShare: (alone.smallNew - alone.smallOld) / perCall.post1k,
    },
    stream1m: {
      maskOldUs: alone.bigOld,
      maskNewUs: alone.bigNew,
      gatewayCpuPerCallUs: perCall.stream1m,
      addedShare: (alone.bigNew - alone.bigOld) / perCall.stream1m,
    },
  };
  const f = (n: number) => n.toFixed(1);
  const pct = (n: number) => `${(n * 100).toFixed(2)}%`;
  console.log(`needles for one bearer token: ${alone.needles} (previously 1)`);
  console.log('workload      mask old µs  mask new µs  gateway CPU/call µs  added share');
  for (const [name, r] of [
    ['1 KB POST', result.post1k],
    ['1 MiB stream', result.stream1m],
  ] as const) {
    console.log(
      `${name.padEnd(13)} ${f(r.maskOldUs).padStart(11)}  ${f(r.maskNewUs).padStart(11)}  ${f(r.gatewayCpuPerCallUs).padStart(19)}  ${pct(r.addedShare).padStart(11)}`,
    );
  }
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `masking-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`written ${path.relative(ROOT, file)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

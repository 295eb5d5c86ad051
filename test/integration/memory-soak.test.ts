/**
 * Memory under sustained load (fault matrix, G16, G11): a bounded soak of the real gateway —
 * strict audit, a REST route and an MCP route — with thousands of REST and MCP calls while MCP
 * sessions are opened (`initialize`, `notifications/initialized`) and ended (`DELETE`) all
 * along. After each round the heap is collected in full and read: what the gateway retains must
 * not grow with the calls it served (a leak of 1 KB per call would show as 5 MB here), its session
 * table must hold only the sessions still open, and its upstream connections must stay within
 * twice the client's concurrency. An ended session is refused, as any session the gateway did not see created.
 *
 * The gateway runs in this process, so the heap read is this process's: the client, the
 * upstreams and jest allocate too, but what they keep does not grow per call either; the bound
 * leaves room for that noise (MAX_RETAINED_GROWTH).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Pool } from 'undici';
import { parseConfig } from '../../src/config/load';
import { type Gateway, startGateway } from '../../src/gateway';
import { createLogger } from '../../src/observability/logger';
import { keyHash } from '../helpers/harness';
import { BOT_POLICY } from '../helpers/gateway-process';

const KEY = 'soak-agent-key';
const MCP_VERSION = '2025-11-25';
/** Rounds after the warm-up one, and what each round sends. */
const ROUNDS = 5;
const CALLS_PER_ROUND = 1000;
const SESSIONS_PER_ROUND = 50;
const CONCURRENCY = 16;
/**
 * Allowed growth of the retained heap from the end of the warm-up round to the end of the last:
 * 400 bytes a call, or 8 KB a session. Measured: 0.3–0.4 MB, and a heap snapshot diff of that
 * growth is V8's own (compiled code, feedback vectors, bytecode of functions tiering up), not
 * objects of the gateway's.
 */
const MAX_RETAINED_GROWTH = 2 * 2 ** 20;
/** With MEMORY_SOAK_SNAPSHOT=prefix, heap snapshots are written at the baseline and at the end, to diff. */
const SNAPSHOT = process.env.MEMORY_SOAK_SNAPSHOT;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** The heap in use right after full collections. */
function retainedHeap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** An HTTP server on 127.0.0.1:0 that keeps nothing of what it served. */
async function startServer(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/**
 * A minimal stateful MCP server: a session id per `initialize`, 202 for notifications, an echo
 * for `tools/call`, 200 for a DELETE of a live session and 404 for an unknown one. As cheap as a
 * server gets, so the rounds measure the gateway.
 */
async function startMcpEcho(): Promise<{ url: string; live: Set<string>; close(): Promise<void> }> {
  const live = new Set<string>();
  const server = await startServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const sid = req.headers['mcp-session-id'];
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      if (req.method === 'DELETE') {
        const known = typeof sid === 'string' && live.delete(sid);
        return void res.writeHead(known ? 200 : 404).end();
      }
      const m = JSON.parse(Buffer.concat(chunks).toString()) as { id?: number; method: string; params?: { arguments?: { message?: string } } };
      if (m.method === 'initialize') {
        const id = randomUUID();
        live.add(id);
        return json(
          200,
          { jsonrpc: '2.0', id: m.id, result: { protocolVersion: MCP_VERSION, capabilities: { tools: {} }, serverInfo: { name: 'echo', version: '1' } } },
          { 'mcp-session-id': id },
        );
      }
      if (typeof sid !== 'string' || !live.has(sid)) return json(404, { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } });
      if (m.id === undefined) return void res.writeHead(202).end();
      json(200, { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: m.params?.arguments?.message ?? '' }] } });
    });
  });
  return { ...server, live };
}

let dir: string;
let rest: Awaited<ReturnType<typeof startServer>>;
let mcp: Awaited<ReturnType<typeof startMcpEcho>>;
let gateway: Gateway;
let pool: Pool;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-memory-soak-'));
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'policies', 'p.rego'), BOT_POLICY);
  // Not the harness's startUpstream: it keeps every request it received, which would grow here.
  rest = await startServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  mcp = await startMcpEcho();
  const yaml = [
    'listen: 127.0.0.1:0',
    'admin: { enabled: false }',
    'policy: { path: ./policies, watch: false }',
    'audit: { path: ./audit, durability: strict }',
    `agents:\n  - id: bot\n    key_sha256: "${keyHash(KEY)}"`,
    'routes:',
    `  - { name: up, prefix: /up/, upstream: "${rest.url}/" }`,
    `  - { name: tools, kind: mcp, prefix: /mcp/, upstream: "${mcp.url}/mcp" }`,
  ].join('\n');
  const file = path.join(dir, 'portcullis.yaml');
  writeFileSync(file, yaml);
  // Warnings only, and thrown away: a log kept in memory would itself grow with the calls.
  const discard = new Writable({ write: (_c, _e, done) => done() });
  gateway = await startGateway(parseConfig(yaml, file), { logger: createLogger('warn', discard), drainMs: 2000 });
  pool = new Pool(gateway.url, { connections: CONCURRENCY, pipelining: 1 });
});

afterAll(async () => {
  await pool?.close();
  await gateway?.close();
  await rest?.close();
  await mcp?.close();
  rmSync(dir, { recursive: true, force: true });
});

const headers = (session: string | null, body: boolean): Record<string, string> => ({
  authorization: `Bearer ${KEY}`,
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': MCP_VERSION,
  ...(body ? { 'content-type': 'application/json' } : {}),
  ...(session ? { 'mcp-session-id': session } : {}),
});

/** Sends one request; resolves with its status and body, failing the test on a network error. */
async function send(method: string, p: string, session: string | null, body?: unknown): Promise<{ status: number; text: string; session: string | null }> {
  const r = await pool.request({
    method: method as 'GET',
    path: p,
    headers: headers(session, body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const sid = r.headers['mcp-session-id'];
  return { status: r.statusCode, text: await r.body.text(), session: typeof sid === 'string' ? sid : null };
}

async function openSession(): Promise<string> {
  const init = await send('POST', '/mcp/', null, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: MCP_VERSION, capabilities: {}, clientInfo: { name: 'soak', version: '1' } },
  });
  expect(init.status).toBe(200);
  const id = init.session as string;
  expect((await send('POST', '/mcp/', id, { jsonrpc: '2.0', method: 'notifications/initialized' })).status).toBe(202);
  return id;
}

/** MCP calls in flight per session, so a session is ended only once its calls are answered. */
const inFlight = new Map<string, number>();

async function call(session: string, id: number, message: string): Promise<{ status: number; text: string }> {
  inFlight.set(session, (inFlight.get(session) ?? 0) + 1);
  try {
    return await send('POST', '/mcp/', session, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message } } });
  } finally {
    inFlight.set(session, (inFlight.get(session) as number) - 1);
  }
}

/**
 * One round: CALLS_PER_ROUND calls, a third each of REST GETs, 1 KB REST POSTs and 1 KB MCP
 * tools/call, CONCURRENCY at a time, over sessions opened and ended as the round goes (one
 * replaced every CALLS_PER_ROUND / SESSIONS_PER_ROUND calls). Every answer must be 2xx.
 */
async function round(sessions: string[]): Promise<{ failures: string[]; ended: string[] }> {
  const failures: string[] = [];
  const ended: string[] = [];
  const message = 'x'.repeat(900);
  let next = 0;
  let rpc = 1;
  const every = Math.floor(CALLS_PER_ROUND / SESSIONS_PER_ROUND);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < CALLS_PER_ROUND; i = next++) {
        if (i % every === 0) {
          // Open the next session, then end the oldest once no call uses it any more.
          sessions.push(await openSession());
          const oldest = sessions.shift() as string;
          while ((inFlight.get(oldest) ?? 0) > 0) await new Promise((r) => setImmediate(r));
          inFlight.delete(oldest);
          const del = await send('DELETE', '/mcp/', oldest);
          if (del.status !== 200) failures.push(`DELETE ${del.status}`);
          ended.push(oldest);
          continue;
        }
        const kind = i % 3;
        const r =
          kind === 0
            ? await send('GET', `/up/items?n=${i}`, null)
            : kind === 1
              ? await send('POST', '/up/items', null, { kind: 'note', text: message })
              : await call(sessions[i % sessions.length], rpc++, message);
        if (r.status < 200 || r.status >= 300) failures.push(`${kind === 2 ? 'MCP' : 'REST'} ${r.status} ${r.text.slice(0, 100)}`);
        else if (kind === 2 && !r.text.includes(message)) failures.push(`MCP not echoed: ${r.text.slice(0, 100)}`);
      }
    }),
  );
  return { failures, ended };
}

test('G16 G11: under sustained REST and MCP load with sessions opened and ended, the retained heap stays flat, ended sessions are forgotten and refused, upstream connections stay bounded', async () => {
  const sessions: string[] = [];
  for (let i = 0; i < 4; i++) sessions.push(await openSession());
  // Warm-up: JIT, pools, caches and the audit writer reach their working size.
  const warm = await round(sessions);
  expect(warm.failures).toEqual([]);
  const baseline = retainedHeap();
  if (SNAPSHOT) writeHeapSnapshot(`${SNAPSHOT}-1.heapsnapshot`);
  const heaps: number[] = [];
  const ended: string[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const result = await round(sessions);
    expect(result.failures).toEqual([]);
    ended.push(...result.ended);
    heaps.push(retainedHeap());
  }
  if (SNAPSHOT) writeHeapSnapshot(`${SNAPSHOT}-2.heapsnapshot`);
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(2)} MB`;
  const growth = heaps[heaps.length - 1] - baseline;
  // The figures, for a failure's message and for whoever tunes the bound.
  const trace = `baseline ${mb(baseline)}, after each round ${heaps.map(mb).join(', ')}`;
  expect({ growthWithinBound: growth <= MAX_RETAINED_GROWTH, trace }).toEqual({ growthWithinBound: true, trace });

  // The session table holds the sessions still open, not the hundreds ended.
  expect(ended.length).toBeGreaterThanOrEqual(ROUNDS * SESSIONS_PER_ROUND);
  expect(gateway.mcpSessions.size).toBe(sessions.length);
  expect(mcp.live.size).toBe(sessions.length);
  // An ended session is refused by the gateway itself (the code is its own), before the policy runs.
  const gone = await send('POST', '/mcp/', ended[0], { jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } });
  expect(gone.status).toBe(404);
  expect(gone.text).toContain('PC_MCP_SESSION_NOT_FOUND');
  expect(gateway.upstreams.connectionCount()).toBeLessThanOrEqual(2 * CONCURRENCY);
  for (const s of sessions.splice(0)) expect((await send('DELETE', '/mcp/', s)).status).toBe(200);
  expect(gateway.mcpSessions.size).toBe(0);
}, 120_000);

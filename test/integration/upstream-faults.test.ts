/**
 * G16 against an upstream that misbehaves at the TCP level (a raw net server): it resets the
 * connection, never answers, trickles its header bytes, sends a header larger than the parser
 * allows, or trickles its body. Each must end within a bounded time as a 502/504 with a stable
 * code, the allow decision and an outcome record, and leave no upstream socket behind.
 */
import http from 'node:http';
import net from 'node:net';
import { oneRouteYaml, rawRequest, startTestGateway, type TestGateway } from '../helpers/harness';

const KEY = 'upstream-faults-key';
const auth = { authorization: `Bearer ${KEY}` };
const HEADERS_MS = 500;
const IDLE_MS = 1000;
/** The whole-call deadline: longer than the idle timeout, which a trickle never trips. */
const TOTAL_MS = 1500;
let upstream: net.Server;
let upstreamUrl: string;
const sockets = new Set<net.Socket>();
let gw: TestGateway;

/** Answers by path, misbehaving on purpose. */
function misbehave(socket: net.Socket, path: string): void {
  const timers: NodeJS.Timeout[] = [];
  socket.on('close', () => timers.forEach(clearInterval));
  socket.on('error', () => undefined);
  switch (path) {
    case '/reset':
      socket.resetAndDestroy();
      return;
    case '/hang':
      return; // reads the request, never answers
    case '/trickle-headers': {
      socket.write('HTTP/1.1 200 OK\r\n');
      timers.push(setInterval(() => socket.write('x-slow: a\r\n'), 100));
      return;
    }
    case '/oversized-header':
      socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(64 * 1024)}\r\ncontent-length: 2\r\n\r\nok`);
      return;
    case '/trickle-body': {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n');
      timers.push(setInterval(() => socket.write('1\r\n.\r\n'), 100));
      return;
    }
    default:
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  }
}

beforeAll(async () => {
  upstream = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      misbehave(socket, head.split(' ')[1] ?? '/');
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
  gw = await startTestGateway({
    yaml: oneRouteYaml({
      upstream: upstreamUrl,
      agentKey: KEY,
      routeExtra: `timeouts: { headers_ms: ${HEADERS_MS}, idle_ms: ${IDLE_MS}, total_ms: ${TOTAL_MS} }`,
    }),
    policies: { 'p.rego': 'package portcullis\n\ndecision := {"allow": input.agent.id == "bot"}\n' },
  });
});

afterAll(async () => {
  await gw?.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => upstream.close(() => r()));
});

/** One call: what the agent saw, how long it took, and the outcome record. */
async function fault(
  path: string,
): Promise<{ status: number; code: string; ms: number; outcome: Record<string, any>; decision: Record<string, any> | undefined }> {
  const t0 = performance.now();
  const r = await rawRequest(gw.gateway.url, { path: `/up${path}`, headers: auth });
  const ms = performance.now() - t0;
  const id = String(r.headers['x-portcullis-decision-id']);
  const outcome = await gw.waitForAudit((x) => x.type === 'outcome' && x.decision_id === id);
  const decision = gw.audit().find((x) => x.type === 'decision' && x.decision_id === id);
  return { status: r.status, code: r.status >= 500 ? JSON.parse(r.body).error.code : '', ms, outcome, decision };
}

test.each([
  ['/reset', 502, 'PC_UPSTREAM_UNAVAILABLE', 1000],
  ['/hang', 504, 'PC_UPSTREAM_TIMEOUT', HEADERS_MS + 1000],
  ['/trickle-headers', 504, 'PC_UPSTREAM_TIMEOUT', HEADERS_MS + 1000],
  ['/oversized-header', 502, 'PC_UPSTREAM_UNAVAILABLE', 1000],
])('G16: an upstream at %s is answered %i %s within a bound, with the allow decision and an outcome record', async (path, status, code, boundMs) => {
  const r = await fault(path);
  expect({ status: r.status, code: r.code }).toEqual({ status, code });
  expect(r.ms).toBeLessThan(boundMs);
  expect(r.decision).toMatchObject({ decision: 'allow' });
  expect(r.outcome).toMatchObject({ status, code });
});

test('G16: repeated resets and hangs leave no upstream socket and no gateway connection behind', async () => {
  for (let round = 0; round < 3; round++)
    await Promise.all(['/reset', '/hang', '/trickle-headers', '/oversized-header'].map((p) => rawRequest(gw.gateway.url, { path: `/up${p}`, headers: auth })));
  await new Promise((r) => setTimeout(r, 200));
  expect(sockets.size).toBe(0);
  expect(gw.gateway.upstreams.connectionCount()).toBe(0);
}, 30_000);

/**
 * undici's bodyTimeout is an *idle* timeout: a body that trickles one byte every 100 ms never
 * trips it. The route's total deadline (`timeouts.total_ms`) cuts the call off, and the outcome
 * record says why.
 */
test('G16: an upstream that trickles its body forever is cut off at the total deadline, with an outcome record', async () => {
  const t0 = performance.now();
  let id = '';
  const ended = await new Promise<boolean>((resolve) => {
    const u = new URL(gw.gateway.url);
    const req = http.get({ host: u.hostname, port: u.port, path: '/up/trickle-body', headers: auth }, (res) => {
      id = String(res.headers['x-portcullis-decision-id']);
      res.resume();
      res.on('end', () => resolve(true));
      res.on('error', () => resolve(true));
      res.on('aborted', () => resolve(true));
      res.on('close', () => resolve(true));
    });
    req.on('error', () => resolve(true));
    setTimeout(() => {
      req.destroy();
      resolve(false);
    }, TOTAL_MS * 3);
  });
  const took = performance.now() - t0;
  expect({ ended, withinBound: took < TOTAL_MS * 3 }).toEqual({ ended: true, withinBound: true });
  expect(took).toBeGreaterThanOrEqual(TOTAL_MS - 50);
  await gw.waitForAudit((r) => r.type === 'outcome' && r.decision_id === id && r.code === 'upstream_timeout');
}, 10_000);

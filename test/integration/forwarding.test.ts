/**
 * Forwarding faults and streaming, against real sockets: SSE passes through unbuffered, a
 * client leaving mid-stream closes the upstream, keep-alive keeps the socket count flat, and
 * a dead or slow upstream is a 502/504 with the decision id (never a crash).
 */
import http from 'node:http';
import { oneRouteYaml, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'forwarding-test-key';
const auth = { authorization: `Bearer ${KEY}` };
let upstream: Upstream;
let gw: TestGateway;
let upstreamClosed: Promise<void>;
let markClosed: () => void;

beforeAll(async () => {
  upstreamClosed = new Promise((r) => (markClosed = r));
  upstream = await startUpstream((req, res) => {
    if (req.url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('id: 1\ndata: first\n\n');
      const t = setTimeout(() => res.end('id: 2\ndata: second\n\n'), 800);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if (req.url === '/endless') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const t = setInterval(() => res.write('data: tick\n\n'), 20);
      res.on('close', () => {
        clearInterval(t);
        markClosed();
      });
      return;
    }
    if (req.url === '/slow') {
      const t = setTimeout(() => res.end('late'), 3000);
      res.on('close', () => clearTimeout(t));
      return;
    }
    res.end('ok');
  });
  gw = await startTestGateway({
    yaml: oneRouteYaml({
      upstream: upstream.url,
      agentKey: KEY,
      durability: 'relaxed',
      routeExtra: 'timeouts: { headers_ms: 400 }',
      moreRoutes: '  - name: down\n    prefix: /down/\n    upstream: http://127.0.0.1:1/\n',
    }),
    policies: { 'p.rego': 'package portcullis\n\ndecision := {"allow": input.agent.id == "bot"}\n' },
  });
});

afterAll(async () => {
  await gw.close();
  await upstream.close();
});

test('SSE events stream through before the upstream finishes', async () => {
  const u = new URL(gw.gateway.url);
  const started = Date.now();
  const firstAt = await new Promise<number>((resolve, reject) => {
    http
      .get({ host: u.hostname, port: u.port, path: '/up/sse', headers: auth }, (res) => {
        expect(res.headers['content-type']).toBe('text/event-stream');
        res.once('data', (d: Buffer) => {
          expect(d.toString()).toContain('data: first');
          resolve(Date.now() - started);
        });
        res.resume();
      })
      .on('error', reject);
  });
  expect(firstAt).toBeLessThan(600);
});

test('a client that disconnects mid-stream closes the upstream request', async () => {
  const u = new URL(gw.gateway.url);
  const req = http.get({ host: u.hostname, port: u.port, path: '/up/endless', headers: auth });
  const id = await new Promise<string>((resolve) =>
    req.on('response', (res) => {
      res.once('data', () => {
        req.destroy();
        resolve(res.headers['x-portcullis-decision-id'] as string);
      });
    }),
  );
  await Promise.race([upstreamClosed, new Promise((_, rej) => setTimeout(() => rej(new Error('upstream stream was not closed')), 3000))]);
  const outcome = await gw.waitForAudit((r) => r.decision_id === id && r.type === 'outcome');
  expect(outcome.code).toBe('client_closed');
});

test('no socket growth: many calls reuse a bounded set of upstream connections', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const u = new URL(gw.gateway.url);
  const one = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get({ host: u.hostname, port: u.port, path: '/up/x', headers: auth, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        })
        .on('error', reject);
    });
  for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 40 }, one));
  const open = await new Promise<number>((r) => upstream.server.getConnections((_e, n) => r(n)));
  expect(open).toBeLessThanOrEqual(16);
  expect(gw.gateway.upstreams.connectionCount()).toBeLessThanOrEqual(16);
  agent.destroy();
});

test('upstream down: 502 with the decision id, allow and outcome audited', async () => {
  const r = await rawRequest(gw.gateway.url, { path: '/down/x', headers: auth });
  expect(r.status).toBe(502);
  const body = JSON.parse(r.body);
  expect(body.error.code).toBe('PC_UPSTREAM_UNAVAILABLE');
  expect(body.error.decision_id).toBe(r.headers['x-portcullis-decision-id']);
  const outcome = await gw.waitForAudit((x) => x.decision_id === body.error.decision_id && x.type === 'outcome');
  expect(outcome).toMatchObject({ status: 502, code: 'PC_UPSTREAM_UNAVAILABLE' });
  expect(gw.audit().find((x) => x.decision_id === body.error.decision_id && x.type === 'decision')).toMatchObject({ decision: 'allow' });
});

test('slow upstream: 504 after the headers timeout', async () => {
  const t0 = Date.now();
  const r = await rawRequest(gw.gateway.url, { path: '/up/slow', headers: auth });
  expect(r.status).toBe(504);
  expect(JSON.parse(r.body).error.code).toBe('PC_UPSTREAM_TIMEOUT');
  expect(Date.now() - t0).toBeLessThan(2500);
});

test('graceful shutdown drains an in-flight call', async () => {
  const extra = await startTestGateway({
    yaml: oneRouteYaml({ upstream: upstream.url }),
    policies: { 'p.rego': 'package portcullis\n\ndecision := true\n' },
  });
  const pending = rawRequest(extra.gateway.url, { path: '/up/sse' });
  await new Promise((r) => setTimeout(r, 200));
  const closing = extra.close();
  const r = await pending;
  await closing;
  expect(r.status).toBe(200);
  expect(r.body).toContain('data: second');
  // gateway_stop, then the closing checkpoint that signs everything before it
  expect(extra.audit().slice(-2)).toMatchObject([{ type: 'gateway_stop' }, { type: 'checkpoint' }]);
});

test('a burst of clients aborting mid-response leaves the gateway serving', async () => {
  const u = new URL(gw.gateway.url);
  const aborts = Array.from(
    { length: 30 },
    () =>
      new Promise<void>((resolve) => {
        const req = http.get({ host: u.hostname, port: u.port, path: '/up/sse', headers: auth });
        req.on('response', (res) => res.once('data', () => req.destroy()));
        req.on('close', () => resolve());
        req.on('error', () => resolve());
      }),
  );
  await Promise.all(aborts);
  const r = await rawRequest(gw.gateway.url, { path: '/up/still-alive', headers: auth });
  expect(r.status).toBe(200);
});

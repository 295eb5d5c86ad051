/**
 * The edge trusts nothing unverified (G20): every listener checks `Host` and `Origin` against its
 * allow-list before anything else looks at the call, so a page that rebinds a DNS name to the
 * gateway's loopback address cannot use it. Proxy headers (`X-Forwarded-*`, `Forwarded`,
 * `X-Real-IP`) never stand in for `Host`. A real gateway on port 0, a counting upstream, raw
 * HTTP requests with the headers set by hand.
 */
import { rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const ALLOW_ALL = 'package portcullis\n\ndecision := {"allow": true, "reasons": ["allow-all"]}\n';

let upstream: Upstream;
let gw: TestGateway;
let port: string;

beforeAll(async () => {
  upstream = await startUpstream();
  gw = await startTestGateway({
    yaml: [
      'listen: 127.0.0.1:0',
      'admin: { listen: 127.0.0.1:0 }',
      'policy: { path: ./policies, watch: false }',
      'audit: { path: ./audit }',
      'routes:',
      `  - { name: up, prefix: /up/, upstream: "${upstream.url}/" }`,
      `  - { name: tools, kind: mcp, prefix: /mcp/tools/, upstream: "${upstream.url}/mcp" }`,
    ].join('\n'),
    policies: { 'policy.rego': ALLOW_ALL },
  });
  port = new URL(gw.gateway.url).port;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

const get = (headers: Record<string, string>, path = '/up/x') => rawRequest(gw.gateway.url, { path, headers });

test('G20: a Host of the listen address or a loopback name with its port is accepted', async () => {
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
    expect({ host, status: (await get({ host })).status }).toEqual({ host, status: 200 });
  }
});

test('G20: a DNS-rebinding Host is refused with 403 PC_BAD_HOST, audited, and not forwarded', async () => {
  const before = upstream.received.length;
  for (const host of ['evil.example.com', `evil.example.com:${port}`, 'localhost', `localhost:${Number(port) + 1}`, `127.0.0.2:${port}`]) {
    const r = await get({ host });
    expect({ host, status: r.status, code: r.headers['x-portcullis-error'] }).toEqual({ host, status: 403, code: 'PC_BAD_HOST' });
    const id = r.headers['x-portcullis-decision-id'];
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === id);
    expect(rec).toMatchObject({ decision: 'deny', code: 'PC_BAD_HOST', status: 403, route: 'up', agent: null });
  }
  expect(upstream.received.length).toBe(before);
});

test('G20: an Origin that is not the listener itself is refused with 403 PC_BAD_ORIGIN; a matching one is accepted', async () => {
  const before = upstream.received.length;
  const host = `127.0.0.1:${port}`;
  for (const origin of ['http://evil.example.com', `http://evil.example.com:${port}`, 'null', `https://attacker.test`]) {
    const r = await get({ host, origin });
    expect({ origin, status: r.status, code: r.headers['x-portcullis-error'] }).toEqual({ origin, status: 403, code: 'PC_BAD_ORIGIN' });
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === r.headers['x-portcullis-decision-id']);
    expect(rec).toMatchObject({ decision: 'deny', code: 'PC_BAD_ORIGIN' });
  }
  expect(upstream.received.length).toBe(before);
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
    expect({ origin, status: (await get({ host, origin })).status }).toEqual({ origin, status: 200 });
  }
});

test('G20 G10: on an MCP route the refusal is a JSON-RPC error, not forwarded', async () => {
  const before = upstream.received.length;
  const r = await rawRequest(gw.gateway.url, {
    method: 'POST',
    path: '/mcp/tools/',
    headers: {
      host: 'evil.example.com',
      origin: 'http://evil.example.com',
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  expect(r.status).toBe(403);
  const body = JSON.parse(r.body);
  expect(body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600, data: { code: 'PC_BAD_HOST' } } });
  expect(upstream.received.length).toBe(before);
});

test('G20: X-Forwarded-Host, Forwarded and X-Real-IP never stand in for Host', async () => {
  const good = `127.0.0.1:${port}`;
  const accepted = await get({
    host: good,
    'x-forwarded-host': 'evil.example.com',
    forwarded: 'host=evil.example.com;for=6.6.6.6',
    'x-real-ip': '6.6.6.6',
    'x-forwarded-user': 'bot',
    'x-forwarded-for': '10.9.9.9',
  });
  expect(accepted.status).toBe(200);
  // The upstream sees the gateway's own X-Forwarded-Host: the Host the edge judged.
  const seen = JSON.parse(accepted.body).headers;
  expect({ host: seen['x-forwarded-host'], for: seen['x-forwarded-for'], realIp: seen['x-real-ip'], forwarded: seen.forwarded }).toEqual({
    host: good,
    for: '127.0.0.1',
    realIp: undefined,
    forwarded: undefined,
  });
  const refused = await get({
    host: 'evil.example.com',
    'x-forwarded-host': `localhost:${port}`,
    forwarded: `host=localhost:${port}`,
    'x-real-ip': '127.0.0.1',
  });
  expect({ status: refused.status, code: refused.headers['x-portcullis-error'] }).toEqual({ status: 403, code: 'PC_BAD_HOST' });
});

test('G20: an absolute-form target cannot name another authority than the Host judged', async () => {
  const before = upstream.received.length;
  const r = await get({ host: `127.0.0.1:${port}` }, 'http://evil.example.com/up/x');
  expect({ status: r.status, code: r.headers['x-portcullis-error'] }).toEqual({ status: 400, code: 'PC_BAD_PATH' });
  expect(upstream.received.length).toBe(before);
});

test('G20: the admin listener checks Host and Origin too (plain 403 JSON)', async () => {
  const admin = gw.gateway.adminUrl!;
  const adminPort = new URL(admin).port;
  const ok = await rawRequest(admin, { path: '/healthz', headers: { host: `localhost:${adminPort}` } });
  expect(ok.status).toBe(200);
  const bad = await rawRequest(admin, { path: '/metrics', headers: { host: 'evil.example.com' } });
  expect(bad.status).toBe(403);
  expect(JSON.parse(bad.body)).toMatchObject({ error: { code: 'PC_BAD_HOST' } });
  expect(bad.body).not.toContain('portcullis_');
  const badOrigin = await rawRequest(admin, { path: '/readyz', headers: { host: `127.0.0.1:${adminPort}`, origin: 'http://evil.example.com' } });
  expect(badOrigin.status).toBe(403);
  expect(JSON.parse(badOrigin.body)).toMatchObject({ error: { code: 'PC_BAD_ORIGIN' } });
});

test('G20: allowed_hosts and allowed_origins replace the defaults', async () => {
  const own = await startTestGateway({
    yaml: [
      'listen: 127.0.0.1:0',
      'allowed_hosts: [gw.internal, "gw.example.com:8443"]',
      'allowed_origins: ["https://app.example.com"]',
      'admin: { enabled: false }',
      'policy: { path: ./policies, watch: false }',
      'audit: { path: ./audit }',
      'routes:',
      `  - { name: up, prefix: /up/, upstream: "${upstream.url}/" }`,
    ].join('\n'),
    policies: { 'policy.rego': ALLOW_ALL },
  });
  try {
    const at = (headers: Record<string, string>) => rawRequest(own.gateway.url, { path: '/up/x', headers }).then((r) => r.status);
    expect(await at({ host: 'gw.internal' })).toBe(200);
    expect(await at({ host: 'gw.internal:9999' })).toBe(200);
    expect(await at({ host: 'gw.example.com:8443', origin: 'https://app.example.com' })).toBe(200);
    expect(await at({ host: 'gw.example.com:8444' })).toBe(403);
    expect(await at({ host: `127.0.0.1:${new URL(own.gateway.url).port}` })).toBe(403);
    expect(await at({ host: 'gw.internal', origin: 'http://gw.internal' })).toBe(403);
  } finally {
    await own.close();
  }
});

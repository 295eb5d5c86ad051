/**
 * `listen: unix:PATH` for the agent and admin listeners (G20): a real client over the socket
 * (`http.request({socketPath})` and undici), the call judged, audited and forwarded end to end;
 * the socket file's mode; the default Host allow-list there (`localhost`); a stale socket left
 * by a killed process removed at start, while a live socket or a file that is not a socket
 * refuses the start and is left alone; the file removed at shutdown.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'undici';
import { ConfigError } from '../../src/errors';
import { startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const ALLOW_ALL = 'package portcullis\n\ndecision := {"allow": true, "reasons": ["allow-all"]}\n';

let upstream: Upstream;

beforeAll(async () => {
  upstream = await startUpstream();
});

afterAll(async () => {
  await upstream?.close();
});

function unixYaml(extra: string[] = []): string {
  return [
    'listen: unix:./gw.sock',
    ...extra,
    'admin: { listen: "unix:./admin.sock" }',
    'policy: { path: ./policies, watch: false }',
    'audit: { path: ./audit }',
    'routes:',
    `  - { name: up, prefix: /up/, upstream: "${upstream.url}/" }`,
  ].join('\n');
}

function start(yaml: string, dir?: string): Promise<TestGateway> {
  return startTestGateway({ yaml, policies: { 'policy.rego': ALLOW_ALL }, dir });
}

/** A GET over the Unix socket with http.request; `host` overrides the Host header. */
function overSocket(socketPath: string, p: string, host?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: p, headers: host ? { host } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

const modeOf = (file: string) => statSync(file).mode & 0o777;

test('G20: a call over the Unix socket works end to end, is audited, and the socket is 0660 and removed at shutdown', async () => {
  const gw = await start(unixYaml());
  const sock = path.join(gw.dir, 'gw.sock');
  const adminSock = path.join(gw.dir, 'admin.sock');
  try {
    expect(gw.gateway.url).toBe(`unix:${sock}`);
    expect(statSync(sock).isSocket()).toBe(true);
    expect(modeOf(sock)).toBe(0o660);
    expect(modeOf(adminSock)).toBe(0o660);

    // http.request with socketPath sends Host: localhost, the default allow-list on a socket.
    const before = upstream.received.length;
    const r = await overSocket(sock, '/up/items?x=1');
    expect(r.status).toBe(200);
    expect(upstream.received.length).toBe(before + 1);
    expect(upstream.received.at(-1)!.url).toBe('/items?x=1');
    const id = r.headers['x-portcullis-decision-id'];
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === id);
    expect(rec).toMatchObject({ decision: 'allow', route: 'up', path: '/up/items?x=1' });
    expect(gw.audit().find((x) => x.type === 'gateway_start')).toMatchObject({ listen: `unix:${sock}` });

    // undici over the same socket.
    const client = new Client('http://localhost', { socketPath: sock });
    try {
      const u = await client.request({ path: '/up/undici', method: 'GET' });
      expect(u.statusCode).toBe(200);
      await u.body.text();
    } finally {
      await client.close();
    }

    // Host is still checked on a socket.
    const bad = await overSocket(sock, '/up/items', 'evil.example.com');
    expect({ status: bad.status, code: bad.headers['x-portcullis-error'] }).toEqual({ status: 403, code: 'PC_BAD_HOST' });
    await gw.waitForAudit((x) => x.type === 'decision' && x.code === 'PC_BAD_HOST');

    const health = await overSocket(adminSock, '/healthz');
    expect(health.status).toBe(200);
    expect((await overSocket(adminSock, '/metrics', 'evil.example.com')).status).toBe(403);
  } finally {
    await gw.close();
  }
  expect(existsSync(sock)).toBe(false);
  expect(existsSync(adminSock)).toBe(false);
});

test('G20: socket_mode sets the socket file mode', async () => {
  const gw = await start(unixYaml(['socket_mode: "0600"']));
  try {
    expect(modeOf(path.join(gw.dir, 'gw.sock'))).toBe(0o600);
    expect(modeOf(path.join(gw.dir, 'admin.sock'))).toBe(0o660);
  } finally {
    await gw.close();
  }
});

test('G20: a stale socket left by a killed process is removed at start', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-test-'));
  const sock = path.join(dir, 'gw.sock');
  // A process that binds the socket and dies by SIGKILL: the file stays, nobody listens on it.
  const script = `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`;
  try {
    execFileSync(process.execPath, ['-e', script]);
  } catch {
    /* killed, as intended */
  }
  expect(statSync(sock).isSocket()).toBe(true);
  const gw = await start(unixYaml(), dir);
  try {
    expect((await overSocket(sock, '/up/x')).status).toBe(200);
  } finally {
    await gw.close();
  }
});

test('G20: a live socket or a file that is not a socket refuses the start and is left alone', async () => {
  // Someone else listens on the path.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-test-'));
  const sock = path.join(dir, 'gw.sock');
  // (The gateway's probe connects and hangs up at once: the reset is expected.)
  const other = net.createServer((s) => s.on('error', () => undefined).end('other\n'));
  await new Promise<void>((r) => other.listen(sock, r));
  try {
    await expect(start(unixYaml(), dir)).rejects.toThrow(/already listening/);
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect(sock).on('error', reject);
      c.on('data', (d) => {
        resolve(d.toString());
        c.destroy();
      });
    });
    expect(reply).toBe('other\n');
  } finally {
    await new Promise((r) => other.close(r));
  }

  // A regular file at the path: never deleted; a config error at the listen key.
  const dir2 = mkdtempSync(path.join(os.tmpdir(), 'portcullis-test-'));
  writeFileSync(path.join(dir2, 'gw.sock'), 'precious');
  const err = await start(unixYaml(), dir2).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  expect(err).toMatchObject({ code: 'CONFIG_PATH', keyPath: 'listen', line: 1 });
  expect(readFileSync(path.join(dir2, 'gw.sock'), 'utf8')).toBe('precious');
  expect(existsSync(path.join(dir2, 'audit'))).toBe(false);
});

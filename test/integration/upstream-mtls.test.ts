/**
 * `type: mtls` credentials (docs/credentials.md, Upstream mTLS) against a real TLS upstream
 * (node:https) that requires a client certificate of its CA. The CAs and certificates are made
 * here with the openssl CLI. The upstream records the SHA-256 of the certificate each connection
 * presented, so the test sees which files a connection used. Guarantee G27 (docs/guarantees.md).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { keyHash, startTestGateway, type TestGateway } from '../helpers/harness';

const AGENT_KEY = 'upstream-mtls-agent-key-0001';
const POLICY = 'package portcullis\n\ndecision := {"allow": input.agent.id == "bot", "reasons": ["bot"]}\n';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-upmtls-'));
const at = (name: string) => path.join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

let serialNo = 0x1000;

/** A self-signed CA: `<name>.pem`, `<name>.key`. */
function makeCa(name: string): void {
  openssl(
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ); // biome-ignore format: argument list
}

/** A certificate of `ca`: `<name>.pem`, `<name>.key`. */
function makeCert(name: string, ca: string, ext: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  writeFileSync(at(`${name}.ext`), ext);
  openssl(
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(serialNo++), '-days', '2',
    '-out', `${name}.pem`, '-extfile', `${name}.ext`,
  ); // biome-ignore format: argument list
}

const fingerprintOf = (name: string) => new X509Certificate(readFileSync(at(`${name}.pem`))).fingerprint256;

/** The files the gateway's credential names: replaced in place by rename, like a cert-manager or Vault Agent write. */
function install(name: string): void {
  for (const ext of ['key', 'pem']) {
    copyFileSync(at(`${name}.${ext}`), at(`creds/.client.${ext}.tmp`));
    renameSync(at(`creds/.client.${ext}.tmp`), at(`creds/client.${ext}`));
  }
}

interface Seen {
  readonly url: string;
  /** The client certificate the connection presented. */
  readonly peer: string;
  readonly headers: http.IncomingHttpHeaders;
}

let upstream: https.Server;
let upstreamUrl: string;
const seen: Seen[] = [];
let gw: TestGateway;

beforeAll(async () => {
  mkdirSync(at('creds'));
  mkdirSync(at('policies'));
  makeCa('up-ca');
  makeCa('other-ca');
  makeCert('server', 'up-ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  const client = 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n';
  makeCert('client1', 'up-ca', client);
  makeCert('client2', 'up-ca', client);
  makeCert('stray', 'other-ca', client);
  install('client1');

  upstream = https.createServer(
    {
      cert: readFileSync(at('server.pem')),
      key: readFileSync(at('server.key')),
      ca: readFileSync(at('up-ca.pem')),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate().fingerprint256;
      seen.push({ url: req.url ?? '', peer, headers: req.headers });
      const text = JSON.stringify({ peer });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
  );
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  const yaml = `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit, durability: relaxed }
agents:
  - id: bot
    key_sha256: "${keyHash(AGENT_KEY)}"
credentials:
  up-cert: { type: mtls, cert: { file: creds/client.pem }, key: { file: creds/client.key }, ca: { file: up-ca.pem }, reload_poll_ms: 200 }
  wrong-pin: { type: mtls, cert: { file: client1.pem }, key: { file: client1.key }, ca: { file: other-ca.pem } }
routes:
  - name: up
    prefix: /up/
    upstream: ${upstreamUrl}/
    credential: up-cert
  - name: pinned
    prefix: /pinned/
    upstream: ${upstreamUrl}/
    credential: wrong-pin
`;
  gw = await startTestGateway({ yaml, policies: { 'p.rego': POLICY }, dir });
});

afterAll(async () => {
  await gw?.close();
  await new Promise<void>((r) => {
    upstream.close(() => r());
    upstream.closeAllConnections();
  });
  rmSync(dir, { recursive: true, force: true });
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
afterAll(() => agent.destroy());

function call(p: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${gw.gateway.url}${p}`, { agent, headers: { authorization: `Bearer ${AGENT_KEY}` } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Waits for a line in the gateway's log (bounded). */
async function waitForLog(text: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!gw.logs().includes(text)) {
    if (Date.now() > until) throw new Error(`no log line "${text}"`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('G27: the upstream requires a client certificate: a connection without one is refused in the handshake', async () => {
  const attempt = new Promise<number>((resolve, reject) => {
    const req = https.request(`${upstreamUrl}/direct`, { ca: readFileSync(at('up-ca.pem')), agent: false }, (res) => resolve(res.statusCode ?? 0));
    req.on('error', reject);
    req.end();
  });
  await expect(attempt).rejects.toThrow();
  expect(seen.filter((s) => s.url === '/direct')).toEqual([]);
});

test('G27: calls on a route with an mtls credential reach the upstream with its client certificate; nothing is attached to the request', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await call(`/up/a${i}`);
    expect(r.status).toBe(200);
    expect(r.body.peer).toBe(fingerprintOf('client1'));
  }
  const last = seen[seen.length - 1];
  expect(last.headers.authorization).toBeUndefined();
  const decision = gw.audit().find((r) => r.type === 'decision' && r.path === '/up/a0');
  expect(decision).toMatchObject({ decision: 'allow', credential: 'up-cert' });
  expect(decision?.credential_fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
});

test('G27: a changed set that does not fit together keeps the certificate in use (logged)', async () => {
  // client2's key under client1's certificate: not a pair.
  copyFileSync(at('client2.key'), at('creds/.client.key.tmp'));
  renameSync(at('creds/.client.key.tmp'), at('creds/client.key'));
  await waitForLog('credential up-cert: the changed files are not usable');
  const r = await call('/up/after-bad');
  expect(r.status).toBe(200);
  expect(r.body.peer).toBe(fingerprintOf('client1'));
  expect(gw.audit().filter((x) => x.type === 'credential_rotated')).toEqual([]);
});

test('G27: rotated certificate files are used by new connections, recorded as credential_rotated with matching fingerprints', async () => {
  const before = gw.audit().find((r) => r.type === 'decision' && r.path === '/up/a0');
  install('client2');
  const rotated = await gw.waitForAudit((r) => r.type === 'credential_rotated' && r.credential === 'up-cert', 5000);
  expect(rotated).toMatchObject({ credential_type: 'mtls', grace_s: null, previous_fingerprint: before?.credential_fingerprint });
  for (let i = 0; i < 5; i++) {
    const r = await call(`/up/b${i}`);
    expect(r.status).toBe(200);
    expect(r.body.peer).toBe(fingerprintOf('client2'));
  }
  const after = gw.audit().find((r) => r.type === 'decision' && r.path === '/up/b0');
  expect(after?.credential_fingerprint).toBe(rotated.fingerprint);
  expect(rotated.fingerprint).not.toBe(rotated.previous_fingerprint);
});

test('G27: a CA pin the upstream does not chain to fails closed: 502 PC_UPSTREAM_UNAVAILABLE, nothing reaches the upstream', async () => {
  const count = seen.length;
  const r = await call('/pinned/secret-path');
  expect(r.status).toBe(502);
  expect(r.body.error.code).toBe('PC_UPSTREAM_UNAVAILABLE');
  expect(seen.length).toBe(count);
  const decision = await gw.waitForAudit((x) => x.type === 'decision' && x.path === '/pinned/secret-path');
  await gw.waitForAudit((x) => x.type === 'outcome' && x.decision_id === decision.decision_id && x.code === 'PC_UPSTREAM_UNAVAILABLE');
});

describe('G27: a configuration the upstream mTLS cannot work with does not start', () => {
  const base = (credentials: string, route: string) => `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
${credentials}
  tok: { type: bearer, env: TOK }
routes:
  - name: up
    prefix: /up/
${route}
`;
  const load = (text: string) => () => parseConfig(text, at('portcullis.yaml'), { env: { TOK: 'x' } });

  test('G27: a key that is not the certificate’s', () => {
    const text = base('  c: { type: mtls, cert: { file: client1.pem }, key: { file: client2.key } }', `    upstream: ${upstreamUrl}/\n    credential: c`);
    expect(load(text)).toThrow(ConfigError);
    expect(load(text)).toThrow(/credentials\.c\.key\.file|is not the private key/);
  });

  test('G27: an mtls credential among a route’s credentials (it is per connection, not per call)', () => {
    const text = base(
      '  c: { type: mtls, cert: { file: client1.pem }, key: { file: client1.key } }',
      `    upstream: ${upstreamUrl}/\n    credentials: { a: c, b: tok }`,
    );
    expect(load(text)).toThrow(/mtls credential: it is set on the upstream connection/);
  });

  test('G27: an mtls credential on a plain-http upstream', () => {
    const text = base('  c: { type: mtls, cert: { file: client1.pem }, key: { file: client1.key } }', '    upstream: http://127.0.0.1:9/\n    credential: c');
    expect(load(text)).toThrow(/the upstream must be https/);
  });

  test('G26: rotation keys on an env secret (an environment variable cannot change while the gateway runs)', () => {
    const text = base('  c: { type: header, header: x-api-key, env: TOK, rotation_grace_s: 60 }', `    upstream: ${upstreamUrl}/\n    credential: c`);
    expect(load(text)).toThrow(/rotation_grace_s only goes with a file secret/);
  });
});

/**
 * Agents identified by TLS client certificates (tls: and identity.mtls, docs/identity.md), over
 * real TLS: the CAs, the server certificate and the client certificates are made here with the
 * openssl CLI. A counting upstream and the audit trail prove that a connection refused in the
 * handshake reaches no HTTP processing. Guarantee G22 (docs/guarantees.md).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const SPIFFE_ID = 'spiffe://example.org/ns/prod/sa/support-bot';
const AGENT_KEY = 'mtls-test-agent-key-0001';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["support-bot by certificate"]} if {
	input.agent.method == "mtls"
	input.agent.spiffe_id == "${SPIFFE_ID}"
	input.request.path != "/inspect"
}

decision := {"allow": true, "reasons": ["agent key"]} if {
	input.agent.method == "api_key"
	input.request.path != "/inspect"
}

# Shows the test what the policy saw of the agent.
decision := {"allow": false, "reasons": [json.marshal(input.agent)]} if input.request.path == "/inspect"
`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-mtls-'));
mkdirSync(path.join(dir, 'policies'));
const at = (name: string) => path.join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function serial(): string {
  return `0x${Math.floor(Math.random() * 2 ** 48).toString(16)}`;
}

/** A self-signed CA: `<name>.pem`, `<name>.key`. */
function makeCa(name: string): void {
  openssl(
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ); // biome-ignore format: argument list
}

/** A certificate signed by `ca`: `<name>.pem`, `<name>.key`, with the given extensions. */
function makeCert(name: string, ca: string, cn: string, ext: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(at(`${name}.ext`), ext);
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-set_serial',
    serial(),
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    '-extfile',
    `${name}.ext`,
  );
}

const client = (sans: string) => `subjectAltName=${sans}\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n`;

interface Pem {
  readonly cert: string;
  readonly key: string;
}
const pem = (name: string): Pem => ({ cert: readFileSync(at(`${name}.pem`), 'utf8'), key: readFileSync(at(`${name}.key`), 'utf8') });

/** One HTTPS call on a fresh connection; rejects when the TLS handshake is refused. */
function call(
  base: string,
  p: string,
  cert?: Pem,
  headers: Record<string, string> = {},
  agent: https.Agent | false = false,
): Promise<{ status: number; body: any; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${base}${p}`, { ca: readFileSync(at('server-ca.pem')), agent, headers, ...(cert ?? {}) }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null, reused: (res.socket as TLSSocket).isSessionReused() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function yaml(up: string, clientAuth: 'required' | 'optional'): string {
  return `
listen: 127.0.0.1:0
tls:
  cert: { file: ${at('server.pem')} }
  key: { file: ${at('server.key')} }
  client_ca: { file: ${at(`client-ca-${clientAuth}.pem`)} }
  client_auth: ${clientAuth}
  reload_poll_ms: 200
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
agents:
  - id: key-bot
    key_sha256: "${keyHash(AGENT_KEY)}"
identity:
  mtls:
    trust_domain: example.org
routes:
  - name: api
    prefix: /api/
    upstream: ${up}/
`;
}

let upstream: Upstream;
let gw: TestGateway;
let optionalGw: TestGateway;

beforeAll(async () => {
  makeCa('server-ca');
  makeCa('ca-a');
  makeCa('ca-b');
  makeCert('server', 'server-ca', 'gateway', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  makeCert('bot', 'ca-a', 'support-bot', client(`URI:${SPIFFE_ID}`));
  makeCert('other-bot', 'ca-a', 'other-bot', client('URI:spiffe://example.org/ns/prod/sa/other-bot'));
  makeCert('two-uris', 'ca-a', 'support-bot', client(`URI:${SPIFFE_ID},URI:spiffe://example.org/ns/prod/sa/admin`));
  makeCert('foreign', 'ca-a', 'support-bot', client('URI:spiffe://evil.example/ns/prod/sa/support-bot'));
  makeCert('bot-b', 'ca-b', 'support-bot', client(`URI:${SPIFFE_ID}`));
  writeFileSync(at('client-ca-required.pem'), readFileSync(at('ca-a.pem')));
  writeFileSync(at('client-ca-optional.pem'), readFileSync(at('ca-a.pem')));
  upstream = await startUpstream();
  gw = await startTestGateway({ yaml: yaml(upstream.url, 'required'), policies: { 'p.rego': POLICY } });
  optionalGw = await startTestGateway({ yaml: yaml(upstream.url, 'optional'), policies: { 'p.rego': POLICY } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await optionalGw?.close();
  await upstream?.close();
});

const calls = (g: TestGateway) => g.audit().filter((r) => r.type !== 'gateway_start' && r.type !== 'checkpoint').length;

test('G22: a call over HTTPS with a client certificate of the configured CA is allowed, and the policy sees its SPIFFE ID and fingerprint', async () => {
  const before = upstream.received.length;
  const ok = await call(gw.gateway.url, '/api/tickets', pem('bot'));
  expect(ok.status).toBe(200);
  expect(upstream.received.length).toBe(before + 1);
  expect(upstream.received.at(-1)!.headers['x-forwarded-proto']).toBe('https');
  const seen = await call(gw.gateway.url, '/api/inspect', pem('bot'));
  expect(seen.status).toBe(403);
  const agent = JSON.parse(seen.body.error.reasons[0]);
  expect(agent).toMatchObject({
    id: SPIFFE_ID,
    method: 'mtls',
    spiffe_id: SPIFFE_ID,
    cert_sha256: new X509Certificate(pem('bot').cert).fingerprint256,
    subject: 'support-bot',
  });
  expect(gw.gateway.url.startsWith('https://')).toBe(true);
  // The edge's default Origin on a TLS listener is https:// and an allowed Host.
  const port = new URL(gw.gateway.url).port;
  expect((await call(gw.gateway.url, '/api/tickets', pem('bot'), { origin: `https://127.0.0.1:${port}` })).status).toBe(200);
  expect((await call(gw.gateway.url, '/api/tickets', pem('bot'), { origin: `http://127.0.0.1:${port}` })).status).toBe(403);
});

test('G22: with client_auth required, a certificate of another CA or none at all is refused in the handshake: no HTTP request is processed', async () => {
  const before = upstream.received.length;
  const audited = calls(gw);
  await expect(call(gw.gateway.url, '/api/tickets', pem('bot-b'))).rejects.toThrow();
  await expect(call(gw.gateway.url, '/api/tickets')).rejects.toThrow();
  await expect(call(gw.gateway.url, '/api/tickets', undefined, { authorization: `Bearer ${AGENT_KEY}` })).rejects.toThrow();
  expect(upstream.received.length).toBe(before);
  expect(calls(gw)).toBe(audited);
  expect(gw.logs()).toContain('a TLS handshake on the agent listener was refused');
});

test('G22: a certificate with two URI SANs, or a SPIFFE ID of another trust domain, is refused 401 PC_CLIENT_CERT_REQUIRED and not forwarded', async () => {
  const before = upstream.received.length;
  for (const name of ['two-uris', 'foreign']) {
    const res = await call(gw.gateway.url, '/api/tickets', pem(name));
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('PC_CLIENT_CERT_REQUIRED');
  }
  expect(upstream.received.length).toBe(before);
});

test('G22: X-Forwarded-Client-Cert and similar headers never feed identity', async () => {
  const forged = {
    'x-forwarded-client-cert': `By=spiffe://example.org/gw;Hash=00;URI=${SPIFFE_ID}`,
    'x-ssl-client-s-dn': 'CN=support-bot',
    'x-client-cert-spiffe-id': SPIFFE_ID,
    'ssl-client-cert': encodeURIComponent(pem('bot').cert),
  };
  const seen = await call(gw.gateway.url, '/api/inspect', pem('other-bot'), forged);
  expect(JSON.parse(seen.body.error.reasons[0])).toMatchObject({ id: 'spiffe://example.org/ns/prod/sa/other-bot', method: 'mtls' });
  const before = upstream.received.length;
  expect((await call(gw.gateway.url, '/api/tickets', pem('other-bot'), forged)).status).toBe(403);
  expect((await call(gw.gateway.url, '/api/tickets', pem('two-uris'), forged)).status).toBe(401);
  // With client_auth optional and no certificate, the headers name no one either.
  const anon = await call(optionalGw.gateway.url, '/api/inspect', undefined, forged);
  expect(anon.body.error.reasons).toEqual(['null']);
  expect(upstream.received.length).toBe(before);
});

test('G22: with client_auth optional, no certificate lets other methods identify (spiffe_id null); one of another CA is refused 401 PC_CLIENT_CERT_REQUIRED', async () => {
  const seen = await call(optionalGw.gateway.url, '/api/inspect', undefined, { authorization: `Bearer ${AGENT_KEY}` });
  expect(JSON.parse(seen.body.error.reasons[0])).toMatchObject({ id: 'key-bot', method: 'api_key', spiffe_id: null, cert_sha256: null });
  expect((await call(optionalGw.gateway.url, '/api/tickets', undefined, { authorization: `Bearer ${AGENT_KEY}` })).status).toBe(200);
  const before = upstream.received.length;
  const res = await call(optionalGw.gateway.url, '/api/tickets', pem('bot-b'), { authorization: `Bearer ${AGENT_KEY}` });
  expect(res.status).toBe(401);
  expect(res.body.error.code).toBe('PC_CLIENT_CERT_REQUIRED');
  expect(upstream.received.length).toBe(before);
  expect((await call(optionalGw.gateway.url, '/api/tickets', pem('bot'))).status).toBe(200);
});

async function eventually(check: () => Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('G22: the CA file rotates: a certificate of the new CA is refused before and accepted after; a broken file keeps the old CA', async () => {
  const caFile = at('client-ca-required.pem');
  // A client that caches TLS sessions, to show a session from before the rotation is not resumed after it.
  const resuming = new https.Agent({ keepAlive: false, maxCachedSessions: 10 });
  expect((await call(gw.gateway.url, '/api/tickets', pem('bot'), {}, resuming)).status).toBe(200);
  expect(await call(gw.gateway.url, '/api/tickets', pem('bot'), {}, resuming)).toMatchObject({ status: 200, reused: true });
  expect(await call(gw.gateway.url, '/api/tickets', pem('bot-b')).catch(() => 'refused')).toBe('refused');
  // A broken bundle is logged and changes nothing.
  writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
  await eventually(async () => gw.logs().includes('not usable; keeping the certificates in use'));
  expect((await call(gw.gateway.url, '/api/tickets', pem('bot'))).status).toBe(200);
  // The new CA.
  writeFileSync(caFile, readFileSync(at('ca-b.pem')));
  await eventually(async () => (await call(gw.gateway.url, '/api/tickets', pem('bot-b'))).status === 200);
  expect(await call(gw.gateway.url, '/api/tickets', pem('bot')).catch(() => 'refused')).toBe('refused');
  expect(await call(gw.gateway.url, '/api/tickets', pem('bot'), {}, resuming).catch(() => 'refused')).toBe('refused');
  resuming.destroy();
});

test("G22: a changed server key that is not the certificate's keeps the certificates in use", async () => {
  const keyFile = at('server.key');
  const good = readFileSync(keyFile);
  const logged = gw.logs().split('not usable; keeping').length;
  writeFileSync(keyFile, readFileSync(at('bot.key')));
  await eventually(async () => gw.logs().split('not usable; keeping').length > logged);
  expect((await call(gw.gateway.url, '/api/tickets', pem('bot-b'))).status).toBe(200);
  writeFileSync(keyFile, good);
});

describe('bad tls / identity.mtls config refuses to start, naming file, line and key path', () => {
  function refusal(text: string): ConfigError {
    const file = at('bad.yaml');
    try {
      parseConfig(text, file);
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error('the config was accepted');
  }
  const base = (tls: string, identity = 'identity: { mtls: {} }') => `
listen: 127.0.0.1:0
${tls}
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
${identity}
routes:
  - name: api
    prefix: /api/
    upstream: http://127.0.0.1:1/
`;
  test('a missing CA file', () => {
    const err = refusal(base(`tls: { cert: { file: ${at('server.pem')} }, key: { file: ${at('server.key')} }, client_ca: { file: ${at('nope.pem')} } }`));
    expect(err.code).toBe('CONFIG_PATH');
    expect(err.keyPath).toBe('tls.client_ca.file');
    expect(err.line).toBe(3);
    expect(err.message).toContain('bad.yaml:3');
  });
  test('identity.mtls without tls.client_ca', () => {
    const err = refusal(base(`tls: { cert: { file: ${at('server.pem')} }, key: { file: ${at('server.key')} } }`));
    expect(err.code).toBe('CONFIG_MISSING_KEY');
    expect(err.keyPath).toBe('identity.mtls');
    expect(err.line).toBe(6);
  });
  test('client_auth without client_ca, and a CA bundle whose certificate does not parse', () => {
    const noCa = refusal(base(`tls: { cert: { file: ${at('server.pem')} }, key: { file: ${at('server.key')} }, client_auth: optional }`, ''));
    expect(noCa.code).toBe('CONFIG_CONFLICT');
    expect(noCa.keyPath).toBe('tls.client_auth');
    writeFileSync(at('broken-ca.pem'), '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    const broken = refusal(
      base(`tls: { cert: { file: ${at('server.pem')} }, key: { file: ${at('server.key')} }, client_ca: { file: ${at('broken-ca.pem')} } }`),
    );
    expect(broken.code).toBe('CONFIG_PATH');
    expect(broken.keyPath).toBe('tls.client_ca.file');
  });
  test('a key that is not the certificate’s', () => {
    const err = refusal(base(`tls: { cert: { file: ${at('server.pem')} }, key: { file: ${at('bot.key')} } }`, ''));
    expect(err.code).toBe('CONFIG_PATH');
    expect(err.keyPath).toBe('tls.key.file');
    expect(err.message).toContain('is not the private key of');
  });
});

/**
 * A running gateway pulling signed bundles from a real bundle server (OPA's bundle service API)
 * on port 0: ETag and 304, a bearer token, a newer bundle put in force, tampered and older ones
 * refused and audited, and a start with the server down enforcing the persisted bundle.
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { parseConfig } from '../../src/config/load';
import { startGateway } from '../../src/gateway';
import { createLogger } from '../../src/observability/logger';
import { untar } from '../../src/policy/bundle';
import { packBundle } from '../helpers/bundle';
import { keyHash, OPA, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const run = promisify(execFile);
const KEY = 'bundle-service-key';
const TOKEN = 'bundle-server-token-41c9';
const auth = { authorization: `Bearer ${KEY}` };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bundle-svc-'));
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const PUB = path.join(tmp, 'pub.pem');
const PRIV = path.join(tmp, 'priv.pem');
writeFileSync(PUB, publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(PRIV, privateKey.export({ type: 'pkcs8', format: 'pem' }));

let n = 0;
async function bundle(revision: string, serial: number, deny: string): Promise<Buffer> {
  const dir = path.join(tmp, `src-${++n}`);
  mkdirSync(path.join(dir, 'portcullis'), { recursive: true });
  writeFileSync(
    path.join(dir, 'portcullis/policy.rego'),
    `package portcullis\n\ndefault decision := {"allow": false}\n\ndecision := {"allow": true} if {\n\tinput.agent.id == "bot"\n\tnot startswith(input.request.path, "${deny}")\n}\n`,
  );
  writeFileSync(path.join(dir, '.manifest'), JSON.stringify({ revision, metadata: { serial } }));
  const out = path.join(tmp, `b-${n}.tar.gz`);
  await run(OPA, ['build', '-b', '--signing-key', PRIV, '--signing-alg', 'ES256', '-o', out, '.'], { cwd: dir });
  return readFileSync(out);
}

/** A bundle server: serves `current` with its ETag, 304 on a matching If-None-Match, 401 without the token. */
interface BundleServer {
  url: string;
  current: Buffer;
  gets: number;
  notModified: number;
  unauthorized: number;
  close(): Promise<void>;
}
async function bundleServer(first: Buffer): Promise<BundleServer> {
  const s: BundleServer = { url: '', current: first, gets: 0, notModified: 0, unauthorized: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      s.unauthorized++;
      res.writeHead(401).end();
      return;
    }
    s.gets++;
    const etag = `"${createHash('sha256').update(s.current).digest('hex').slice(0, 16)}"`;
    if (req.headers['if-none-match'] === etag) {
      s.notModified++;
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, { etag, 'content-type': 'application/gzip', 'content-length': s.current.length }).end(s.current);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bundles/portcullis.tar.gz`;
  s.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return s;
}

let upstream: Upstream;
const yaml = (url: string, persist: string) =>
  [
    'listen: 127.0.0.1:0',
    'admin: { enabled: false }',
    'policy:',
    `  bundle: { url: "${url}", min_delay_seconds: 0.1, max_delay_seconds: 0.2, token: { env: BUNDLE_TOKEN }, persist_dir: ${persist}, timeout_ms: 2000 }`,
    `  signing: { verification_key: ${PUB}, algorithm: ES256 }`,
    'audit: { path: ./audit, durability: relaxed }',
    `agents:\n  - id: bot\n    key_sha256: "${keyHash(KEY)}"`,
    `routes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/`,
  ].join('\n');
const env = { BUNDLE_TOKEN: TOKEN };

beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(() => upstream.close());

describe('pulled from a bundle server', () => {
  let server: BundleServer;
  let gw: TestGateway;
  let v1: Buffer;
  let v2: Buffer;
  const persist = path.join(tmp, 'persist');
  const status = async (p: string) => (await rawRequest(gw.gateway.url, { path: p, headers: auth })).status;
  const count = (type: string) => gw.audit().filter((r) => r.type === type).length;
  const until = async (pred: () => boolean, what: string) => {
    const end = Date.now() + 8000;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    v1 = await bundle('v1', 1, '/nothing');
    v2 = await bundle('v2', 2, '/secret');
    server = await bundleServer(v1);
    gw = await startTestGateway({ yaml: yaml(server.url, persist), policies: {}, env });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
  });

  test('the first bundle comes from the server with the token, and is persisted', async () => {
    expect(gw.gateway.policy.current.revision).toBe('v1');
    expect(gw.audit().find((r) => r.type === 'policy_loaded')).toMatchObject({ revision: 'v1', serial: 1, signature: { key_id: 'default' } });
    expect(server.unauthorized).toBe(0);
    expect(readFileSync(path.join(persist, 'bundle.tar.gz')).equals(v1)).toBe(true);
  });

  test('polls send If-None-Match and a 304 changes nothing', async () => {
    await until(() => server.notModified >= 2, 'two 304s');
    expect(count('policy_loaded')).toBe(1);
    expect(await status('/up/secret')).toBe(200);
  });

  test('a newer signed bundle is put in force at the next poll', async () => {
    server.current = v2;
    await until(() => gw.gateway.policy.current.revision === 'v2', 'v2 in force');
    expect(await status('/up/secret')).toBe(403);
    await until(() => readFileSync(path.join(persist, 'bundle.tar.gz')).equals(v2), 'v2 persisted');
  });

  test('G31: a tampered bundle and an older one are refused, audited, and not enforced', async () => {
    const files = untar(gunzipSync(v2));
    files.set('/portcullis/policy.rego', Buffer.from(files.get('/portcullis/policy.rego')!.toString().replace('/secret', '/nothing')));
    const rejected = count('policy_rejected');
    server.current = packBundle(files);
    await until(() => count('policy_rejected') > rejected, 'the tampered bundle refused');
    expect(
      gw
        .audit()
        .filter((r) => r.type === 'policy_rejected')
        .at(-1),
    ).toMatchObject({ reason: 'digest_mismatch', in_force: 'v2' });
    server.current = v1;
    await until(() => count('policy_rejected') > rejected + 1, 'the older bundle refused');
    expect(
      gw
        .audit()
        .filter((r) => r.type === 'policy_rejected')
        .at(-1),
    ).toMatchObject({ reason: 'rollback', in_force: 'v2' });
    expect(gw.gateway.policy.current.revision).toBe('v2');
    expect(await status('/up/secret')).toBe(403);
    // Neither was persisted.
    expect(readFileSync(path.join(persist, 'bundle.tar.gz')).equals(v2)).toBe(true);
    server.current = v2;
  });

  test('G31: with the server down at start, the persisted bundle is enforced; with nothing persisted the start is refused', async () => {
    await gw.close();
    await server.close();
    const dir = gw.dir;
    const config = parseConfig(yaml(server.url, persist), path.join(dir, 'portcullis.yaml'), { env });
    const again = await startGateway(config, { logger: createLogger('silent') });
    try {
      expect(again.policy.current.revision).toBe('v2');
      expect((await rawRequest(again.url, { path: '/up/secret', headers: auth })).status).toBe(403);
    } finally {
      await again.close();
    }
    const empty = parseConfig(yaml(server.url, path.join(tmp, 'never-persisted')), path.join(dir, 'portcullis.yaml'), { env });
    await expect(startGateway(empty, { logger: createLogger('silent') })).rejects.toThrow(/no policy bundle: .*no bundle is persisted/);
  });
});

test('a bundle service config names its problems at their keys', () => {
  const dir = mkdtempSync(path.join(tmp, 'cfg-'));
  const file = path.join(dir, 'portcullis.yaml');
  const text = yaml('https://bundles.example.com/b.tar.gz', './persist');
  expect(() => parseConfig(text.replace('policy:\n', 'policy:\n  path: ./policies\n'), file, { env })).toThrow(/policy\.path: set either path or bundle/);
  expect(() => parseConfig(text.replace('min_delay_seconds: 0.1', 'min_delay_seconds: 5'), file, { env })).toThrow(
    /policy\.bundle\.min_delay_seconds: .*above max_delay_seconds/,
  );
  expect(() => parseConfig(text.replace('https://bundles.example.com', 'http://bundles.example.com'), file, { env })).toThrow(
    /policy\.bundle\.token: a bearer token is sent only over https/,
  );
});

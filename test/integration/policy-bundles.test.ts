/**
 * Signed bundles in a running gateway: real `opa build -b --signing-key` bundles with a key pair
 * made here, put in force by policy.path and policy.signing; every tampered variant, an unsigned
 * one, another key's and an older serial (also across a restart) refused, audited, not enforced.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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
const KEY = 'bundle-test-key';
const auth = { authorization: `Bearer ${KEY}` };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bundles-'));

function pemPair(name: string) {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = path.join(tmp, `${name}.pub.pem`);
  const priv = path.join(tmp, `${name}.pem`);
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { pub, priv };
}
const release = pemPair('release');
const other = pemPair('other');

const rego = (deny: string) => `package portcullis

default decision := {"allow": false, "reasons": ["no rule"]}

decision := {"allow": true, "reasons": ["reads"]} if {
	input.agent.id == "bot"
	not startswith(input.request.path, "${deny}")
}
`;

let builds = 0;
/** `opa build -b` of a Rego policy with a manifest (revision, serial), signed unless `key` is null. */
async function bundle(o: { revision: string; serial: number | null; deny: string; key?: string | null; data?: string }): Promise<string> {
  const dir = path.join(tmp, `src-${++builds}`);
  mkdirSync(path.join(dir, 'portcullis'), { recursive: true });
  writeFileSync(path.join(dir, 'portcullis/policy.rego'), rego(o.deny));
  writeFileSync(path.join(dir, 'data.json'), o.data ?? '{"team": {"name": "secops"}}');
  writeFileSync(path.join(dir, '.manifest'), JSON.stringify({ revision: o.revision, ...(o.serial !== null ? { metadata: { serial: o.serial } } : {}) }));
  const out = path.join(tmp, `bundle-${builds}.tar.gz`);
  const key = o.key === undefined ? release.priv : o.key;
  await run(OPA, ['build', '-b', ...(key ? ['--signing-key', key, '--signing-alg', 'ES256'] : []), '-o', out, '.'], { cwd: dir });
  return out;
}

/** The bundle with one member's bytes changed, repacked. */
function tampered(file: string, member: string, edit: (b: Buffer) => Buffer): string {
  const files = untar(gunzipSync(readFileSync(file)));
  files.set(member, edit(files.get(member)!));
  const out = path.join(tmp, `tampered-${++builds}.tar.gz`);
  writeFileSync(out, packBundle(files));
  return out;
}

let upstream: Upstream;
const yaml = (up: string) =>
  [
    'listen: 127.0.0.1:0',
    'admin: { enabled: false }',
    `policy: { path: ./bundle.tar.gz, watch: true, poll_ms: 200, signing: { verification_key: ${release.pub}, algorithm: ES256 } }`,
    'audit: { path: ./audit, durability: relaxed }',
    `agents:\n  - id: bot\n    key_sha256: "${keyHash(KEY)}"`,
    `routes:\n  - name: up\n    prefix: /up/\n    upstream: ${up}/`,
  ].join('\n');

beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(() => upstream.close());

describe('a signed bundle file', () => {
  let gw: TestGateway;
  let v1: string;
  let v2: string;
  const put = (file: string, dir: string) => {
    // Replaced by rename, as a deploy tool would.
    copyFileSync(file, path.join(dir, 'bundle.tar.gz.new'));
    renameSync(path.join(dir, 'bundle.tar.gz.new'), path.join(dir, 'bundle.tar.gz'));
  };
  const status = async (p: string) => (await rawRequest(gw.gateway.url, { path: p, headers: auth })).status;
  const rejected = async (n: number) => {
    const until = Date.now() + 8000;
    for (;;) {
      const all = gw.audit().filter((r) => r.type === 'policy_rejected');
      if (all.length >= n) return all[n - 1];
      if (Date.now() > until) throw new Error(`no policy_rejected #${n}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    v1 = await bundle({ revision: 'v1', serial: 1, deny: '/nothing' });
    v2 = await bundle({ revision: 'v2', serial: 2, deny: '/secret' });
    const dir = mkdtempSync(path.join(tmp, 'gw-'));
    copyFileSync(v1, path.join(dir, 'bundle.tar.gz'));
    gw = await startTestGateway({ dir, yaml: yaml(upstream.url), policies: {} });
  });
  afterAll(() => gw?.close());

  test('it is verified and put in force; its manifest revision names every decision', async () => {
    const loaded = gw.audit().find((r) => r.type === 'policy_loaded')!;
    expect(loaded).toMatchObject({ revision: 'v1', manifest_revision: 'v1', serial: 1, signature: { key_id: 'default', scope: null } });
    expect(loaded.bundle_sha256).toMatch(/^[0-9a-f]{64}$/);
    const r = await rawRequest(gw.gateway.url, { path: '/up/secret/x', headers: auth });
    expect(r.status).toBe(200);
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === r.headers['x-portcullis-decision-id']);
    expect(rec.policy_revision).toBe('v1');
  });

  test('a newer signed bundle replaces it', async () => {
    put(v2, gw.dir);
    await gw.waitForAudit((r) => r.type === 'policy_loaded' && r.revision === 'v2', 8000);
    expect(await status('/up/secret/x')).toBe(403);
    expect(await status('/up/items')).toBe(200);
  });

  test.each([
    ['rollback', 'an older bundle, validly signed', () => v1],
    [
      'digest_mismatch',
      'one byte changed in a .rego',
      () => tampered(v2, '/portcullis/policy.rego', (b) => Buffer.from(b.toString().replace('/secret', '/secreT'))),
    ],
    ['digest_mismatch', 'a changed data.json', () => tampered(v2, '/data.json', () => Buffer.from('{"team": {"name": "intruder"}}'))],
  ])('G31: refused (%s): %s; the policy in force stays', async (reason, _what, file) => {
    const n = gw.audit().filter((r) => r.type === 'policy_rejected').length + 1;
    put(file(), gw.dir);
    expect(await rejected(n)).toMatchObject({ reason, in_force: 'v2' });
    expect(gw.gateway.policy.current.revision).toBe('v2');
    expect(await status('/up/secret/x')).toBe(403);
  });

  test('G31: refused: unsigned, and signed by another key', async () => {
    for (const [reason, key] of [
      ['unsigned', null],
      ['bad_signature', other.priv],
    ] as const) {
      const n = gw.audit().filter((r) => r.type === 'policy_rejected').length + 1;
      put(await bundle({ revision: 'v3', serial: 3, deny: '/nothing', key }), gw.dir);
      expect(await rejected(n)).toMatchObject({ reason, in_force: 'v2' });
      expect(await status('/up/secret/x')).toBe(403);
    }
  });

  test('G31: across a restart: the highest serial accepted comes from the trail, so an older bundle refuses the start', async () => {
    await gw.close();
    put(v1, gw.dir);
    const config = parseConfig(yaml(upstream.url), path.join(gw.dir, 'portcullis.yaml'));
    await expect(startGateway(config, { logger: createLogger('silent') })).rejects.toThrow(/serial 1 is below 2/);
    // The newest one starts.
    put(v2, gw.dir);
    const again = await startGateway(config, { logger: createLogger('silent') });
    expect(again.policy.current.revision).toBe('v2');
    await again.close();
  });
});

test('without signing, a bundle loads unverified and its record says so; its revision is its digest', async () => {
  const dir = mkdtempSync(path.join(tmp, 'plain-'));
  copyFileSync(await bundle({ revision: 'claimed', serial: 5, deny: '/nothing', key: null }), path.join(dir, 'bundle.tar.gz'));
  const gw = await startTestGateway({ dir, yaml: yaml(upstream.url).replace(/, signing: \{[^}]*\}/, ''), policies: {} });
  try {
    const loaded = gw.audit().find((r) => r.type === 'policy_loaded')!;
    expect(loaded).toMatchObject({ manifest_revision: 'claimed', serial: 5, signature: 'not verified' });
    expect(loaded.revision).toBe(`sha256:${loaded.bundle_sha256}`);
  } finally {
    await gw.close();
  }
});

test('signing on a policy directory, or a key that does not fit the algorithm, refuses the config at its key', () => {
  const dir = mkdtempSync(path.join(tmp, 'cfg-'));
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'bundle.tar.gz'), 'x');
  const file = path.join(dir, 'portcullis.yaml');
  const onDir = yaml('http://127.0.0.1:1').replace('path: ./bundle.tar.gz', 'path: ./policies');
  expect(() => parseConfig(onDir, file)).toThrow(/policy\.signing: signing is for a bundle.*\[CONFIG_CONFLICT\]/);
  const rsa = yaml('http://127.0.0.1:1').replace('algorithm: ES256', 'algorithm: RS256');
  expect(() => parseConfig(rsa, file)).toThrow(/policy\.signing\.verification_key: .* is a ec key; RS256 needs rsa \[CONFIG_VALUE\]/);
});

/**
 * The bundle verifier against the real OPA (src/policy/bundle-signature.ts): bundles signed by
 * `opa build --signing-key` with every algorithm OPA offers, Rego and Wasm, and each tampered
 * variant judged twice, by this verifier and by OPA's own (`opa build -b --verification-key`),
 * which must agree: a good bundle is accepted by both, a tampered one refused by both, with the
 * reason named here. Keys are made in the test; the bundles are repacked as OPA packs them.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { opaBinary, readBundle, untar } from '../../src/policy/bundle';
import { parseManifest } from '../../src/policy/bundle-manifest';
import { BundleRefusedError, type BundleRefusalReason } from '../../src/policy/bundle-refusal';
import { type BundleSigningAlgorithm, type BundleVerificationKey, unpackSignedBundle, verifyBundleSignature } from '../../src/policy/bundle-signature';
import { packBundle } from '../helpers/bundle';

const run = promisify(execFile);
const opa = opaBinary(null);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'portcullis-signed-bundles-'));

const REGO = `package portcullis

default allowed := false

allowed if {
  some agent in data.config.agents
  agent.name == input.agent
}

decision := {"allow": allowed, "reasons": []}
`;
// Unsorted keys, nesting, non-ASCII and escapes, number literals that are not in shortest form.
const DATA = `{
  "zeta": {"b": 2, "a": [1.0, 1e5, -0, 2E-3, 123456789012345678901234567890]},
  "config": {"agents": [{"name": "planner", "note": "é 😀 \\u2028 <&> \\t"}], "limits": {"max": 10, "min": 0.5}},
  "alpha": true
}
`;
const MANIFEST = '{"revision": "v42", "metadata": {"serial": 42, "team": "security"}}\n';

interface Pair {
  readonly priv: string;
  readonly pub: string;
  readonly key: KeyObject;
}

function pemPair(name: string, pair: { privateKey: KeyObject; publicKey: KeyObject }): Pair {
  const priv = path.join(tmp, `${name}.key.pem`);
  const pub = path.join(tmp, `${name}.pub.pem`);
  writeFileSync(priv, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(pub, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub, key: pair.publicKey };
}

const rsa = pemPair('rsa', generateKeyPairSync('rsa', { modulusLength: 2048 }));
const rsa2 = pemPair('rsa2', generateKeyPairSync('rsa', { modulusLength: 2048 }));
const ec256 = pemPair('ec256', generateKeyPairSync('ec', { namedCurve: 'P-256' }));
const ec384 = pemPair('ec384', generateKeyPairSync('ec', { namedCurve: 'P-384' }));
const ec521 = pemPair('ec521', generateKeyPairSync('ec', { namedCurve: 'P-521' }));
const SECRET = 'an HMAC secret shared by signer and gateway';

/** The signing key (a PEM path or the HMAC secret) and verification key for an algorithm. */
function keysFor(alg: BundleSigningAlgorithm): { sign: string; opaVerify: string; ours: BundleVerificationKey } {
  if (alg.startsWith('HS')) return { sign: SECRET, opaVerify: SECRET, ours: { algorithm: alg, key: Buffer.from(SECRET) } };
  const pair = alg === 'ES256' ? ec256 : alg === 'ES384' ? ec384 : alg === 'ES512' ? ec521 : rsa;
  return { sign: pair.priv, opaVerify: pair.pub, ours: { algorithm: alg, key: pair.key } };
}

/** A policy directory with the given files. */
function policyDir(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

const baseFiles = { 'portcullis/policy.rego': REGO, 'data.json': DATA, '.manifest': MANIFEST };
const claimsFile = path.join(tmp, 'claims.json');
writeFileSync(claimsFile, JSON.stringify({ keyid: 'release', scope: 'prod' }));

interface BuildOptions {
  readonly alg?: BundleSigningAlgorithm;
  readonly signingKey?: string | null;
  readonly claims?: boolean;
  readonly wasm?: boolean;
}

let builds = 0;
/** `opa build -b` of the directory, run inside it on `.`; returns the bundle's bytes. */
async function build(dir: string, o: BuildOptions = {}): Promise<Buffer> {
  const out = path.join(tmp, `bundle-${++builds}.tar.gz`);
  const alg = o.alg ?? 'RS256';
  const sign = o.signingKey === null ? [] : ['--signing-key', o.signingKey ?? keysFor(alg).sign, '--signing-alg', alg];
  const args = [
    'build',
    '-b',
    ...(o.wasm ? ['-t', 'wasm', '-e', 'portcullis/decision'] : []),
    ...sign,
    ...(o.claims ? ['--claims-file', claimsFile] : []),
    '-o',
    out,
    '.',
  ];
  await run(opa, args, { cwd: dir });
  return readFileSync(out);
}

/** OPA's own verdict: `opa build -b BUNDLE --verification-key …` (exit status 0 = accepted). */
async function opaVerdict(bundle: Buffer, o: { alg?: BundleSigningAlgorithm; key?: string; scope?: string } = {}): Promise<{ ok: boolean; message: string }> {
  const file = path.join(tmp, `candidate-${++builds}.tar.gz`);
  writeFileSync(file, bundle);
  const alg = o.alg ?? 'RS256';
  const args = [
    'build',
    '-b',
    file,
    '--verification-key',
    o.key ?? keysFor(alg).opaVerify,
    '--signing-alg',
    alg,
    ...(o.scope ? ['--scope', o.scope] : []),
    '-o',
    `${file}.out`,
  ];
  try {
    await run(opa, args);
    return { ok: true, message: '' };
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    return { ok: false, message: `${e.stderr ?? ''}${e.stdout ?? ''}` || String(err) };
  }
}

const members = (bundle: Buffer) => untar(gunzipSync(bundle));
const repack = (bundle: Buffer, edit: (files: Map<string, Buffer>) => void) => {
  const files = members(bundle);
  edit(files);
  return packBundle(files);
};

/** Our verdict, with the base bundle's configuration: key `release` (RS256), scope `prod`. */
async function ours(bundle: Buffer, o: { keys?: Record<string, BundleVerificationKey>; scope?: string } = {}) {
  const keys = new Map(Object.entries(o.keys ?? { release: keysFor('RS256').ours }));
  return verifyBundleSignature(unpackSignedBundle(bundle), { keys, scope: o.scope ?? 'prod' });
}

async function oursRefuses(bundle: Buffer, reason: BundleRefusalReason, o: Parameters<typeof ours>[1] = {}): Promise<BundleRefusedError> {
  try {
    await ours(bundle, o);
  } catch (err) {
    expect(err).toBeInstanceOf(BundleRefusedError);
    expect((err as BundleRefusedError).reason).toBe(reason);
    return err as BundleRefusedError;
  }
  throw new Error(`accepted a bundle that should be refused with ${reason}`);
}

let base: Buffer;
beforeAll(async () => {
  base = await build(policyDir('base', baseFiles), { claims: true });
}, 60_000);

test('a signed Rego bundle verifies here and in OPA; the listing covers every file, the data canonically', async () => {
  const result = await ours(base);
  expect(result.keyId).toBe('release');
  expect(result.scope).toBe('prod');
  expect(result.files.map((f) => f.name).sort()).toEqual(['.manifest', 'data.json', 'portcullis/policy.rego']);
  expect(await opaVerdict(base, { scope: 'prod' })).toEqual({ ok: true, message: '' });
  // The manifest, a signed file, carries the serial.
  expect(parseManifest(members(base).get('/.manifest'))).toMatchObject({ revision: 'v42', serial: 42, metadata: { serial: 42, team: 'security' } });
});

test('every signing algorithm OPA offers: signed by opa build, verified here and by OPA', async () => {
  const dir = policyDir('algs', baseFiles);
  const algs: BundleSigningAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512'];
  for (const alg of algs) {
    const bundle = await build(dir, { alg });
    // Without claims opa build names the key "default" in the payload's keyid.
    const result = await ours(bundle, { keys: { default: keysFor(alg).ours }, scope: '' });
    expect(result.keyId).toBe('default');
    expect(await opaVerdict(bundle, { alg })).toMatchObject({ ok: true });
    // The algorithm is the configured one: the same key configured for another algorithm refuses.
    const other: BundleSigningAlgorithm = alg.startsWith('HS')
      ? alg === 'HS256'
        ? 'HS384'
        : 'HS256'
      : alg.startsWith('ES')
        ? 'RS256'
        : alg === 'RS256'
          ? 'PS256'
          : 'RS256';
    await oursRefuses(bundle, 'bad_signature', { keys: { default: keysFor(other).ours }, scope: '' });
  }
}, 120_000);

test('a signed Wasm bundle (opa build -t wasm) verifies here and in OPA, and still loads', async () => {
  const bundle = await build(policyDir('wasm', baseFiles), { wasm: true, claims: true });
  const result = await ours(bundle);
  expect(result.files.map((f) => f.name).sort()).toEqual(['.manifest', 'data.json', 'policy.wasm', 'portcullis/policy.rego']);
  expect(await opaVerdict(bundle, { scope: 'prod' })).toMatchObject({ ok: true });
  expect(readBundle(bundle, 'wasm bundle').entrypoints).toEqual(['portcullis/decision']);
  expect(parseManifest(members(bundle).get('/.manifest')).serial).toBe(42);
  // One byte of the module changed: refused by both.
  const tampered = repack(bundle, (f) => {
    const wasm = Buffer.from(f.get('/policy.wasm') as Buffer);
    wasm[wasm.length - 1] ^= 1;
    f.set('/policy.wasm', wasm);
  });
  expect((await oursRefuses(tampered, 'digest_mismatch')).file).toBe('policy.wasm');
  expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('digest mismatch') });
}, 60_000);

test('object keys are hashed in the byte order of their UTF-8, as OPA sorts them (not UTF-16 order)', async () => {
  // UTF-16 puts "😀" (D83D DE00) before U+FFFF; UTF-8 puts EF BF BF before F0 9F 98 80.
  const data = '{"😀": 1, "\uffff": 2, "z": 3, "é": {"ά": 4, "a": 5}}';
  const bundle = await build(policyDir('key-order', { ...baseFiles, 'data.json': data }), { claims: true });
  await expect(ours(bundle)).resolves.toMatchObject({ keyId: 'release' });
  const reordered = repack(bundle, (f) => f.set('/data.json', Buffer.from('{"é":{"a":5,"ά":4},"z":3,"\uffff":2,"😀":1}')));
  await expect(ours(reordered)).resolves.toMatchObject({ keyId: 'release' });
  expect(await opaVerdict(reordered, { scope: 'prod' })).toMatchObject({ ok: true });
});

describe('tampered bundles are refused here and by OPA', () => {
  test('a repacked but unchanged bundle is still accepted by both (the repacking is not what they refuse)', async () => {
    const same = repack(base, () => {});
    await expect(ours(same)).resolves.toMatchObject({ keyId: 'release' });
    expect(await opaVerdict(same, { scope: 'prod' })).toMatchObject({ ok: true });
  });

  test('digest_mismatch: one byte changed in a .rego', async () => {
    const tampered = repack(base, (f) => f.set('/portcullis/policy.rego', Buffer.from(REGO.replace('allow', 'allOw'))));
    const err = await oursRefuses(tampered, 'digest_mismatch');
    expect(err.message).toContain('portcullis/policy.rego');
    expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('digest mismatch') });
  });

  test('digest_mismatch: the signature of another bundle with the same file names', async () => {
    const other = await build(policyDir('other', { ...baseFiles, 'portcullis/policy.rego': REGO.replace('"reasons": []', '"reasons": ["other"]') }), {
      claims: true,
    });
    const spliced = repack(base, (f) => f.set('/.signatures.json', members(other).get('/.signatures.json') as Buffer));
    expect((await oursRefuses(spliced, 'digest_mismatch')).file).toBe('portcullis/policy.rego');
    expect(await opaVerdict(spliced, { scope: 'prod' })).toMatchObject({ ok: false });
  });

  test('bad_signature: signed by another key', async () => {
    const bundle = await build(policyDir('wrong-key', baseFiles), { signingKey: rsa2.priv, claims: true });
    await oursRefuses(bundle, 'bad_signature');
    expect(await opaVerdict(bundle, { scope: 'prod' })).toMatchObject({ ok: false });
    // The right public key accepts it, in both.
    await expect(ours(bundle, { keys: { release: { algorithm: 'RS256', key: rsa2.key } } })).resolves.toMatchObject({ keyId: 'release' });
    expect(await opaVerdict(bundle, { key: rsa2.pub, scope: 'prod' })).toMatchObject({ ok: true });
  });

  test('unknown_key: signed for a key id that is not configured (OPA\'s CLI always configures its key as "default", so this is ours alone)', async () => {
    await oursRefuses(base, 'unknown_key', { keys: { elsewhere: keysFor('RS256').ours } });
  });

  test('unsigned: built without --signing-key', async () => {
    const bundle = await build(policyDir('unsigned', baseFiles), { signingKey: null });
    expect(members(bundle).has('/.signatures.json')).toBe(false);
    await oursRefuses(bundle, 'unsigned');
    expect(await opaVerdict(bundle, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('.signatures.json') });
  });

  test('unlisted_file: a file added', async () => {
    const tampered = repack(base, (f) => f.set('/portcullis/extra.rego', Buffer.from('package portcullis\n\nextra := true\n')));
    expect((await oursRefuses(tampered, 'unlisted_file')).file).toBe('portcullis/extra.rego');
    expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('not included in bundle signature') });
  });

  test('missing_file: a file removed', async () => {
    const tampered = repack(base, (f) => f.delete('/data.json'));
    expect((await oursRefuses(tampered, 'missing_file')).file).toBe('data.json');
    expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('not found in the target bundle') });
  });

  test('wrong_scope: verified for another scope, or for none', async () => {
    await oursRefuses(base, 'wrong_scope', { scope: 'staging' });
    expect(await opaVerdict(base, { scope: 'staging' })).toMatchObject({ ok: false, message: expect.stringContaining('scope mismatch') });
    await oursRefuses(base, 'wrong_scope', { scope: '' });
    expect(await opaVerdict(base)).toMatchObject({ ok: false, message: expect.stringContaining('scope mismatch') });
  });

  test('malformed: a member stored twice, either copy unsigned (OPA verifies each copy; a map would keep one)', async () => {
    const files = members(base);
    const tampered = packBundle([
      ['/data.json', Buffer.from('{"config": {"agents": [{"name": "intruder"}]}}')],
      ...[...files].map(([n, b]) => [n, b] as const),
    ]);
    expect((await oursRefuses(tampered, 'malformed')).file).toBe('data.json');
    expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('digest mismatch') });
    // The unsigned copy second: OPA finds it no longer listed once the first copy verified.
    const second = packBundle([...[...files].map(([n, b]) => [n, b] as const), ['/data.json', Buffer.from('{"config": {"agents": [{"name": "intruder"}]}}')]]);
    expect((await oursRefuses(second, 'malformed')).file).toBe('data.json');
    expect(await opaVerdict(second, { scope: 'prod' })).toMatchObject({
      ok: false,
      message: expect.stringContaining('data.json not included in bundle signature'),
    });
  });

  test('data.json with its keys re-ordered, re-indented and strings re-escaped still VERIFIES, in both', async () => {
    const rewritten = `{"alpha":true,"config":{"limits":{"min":0.5,"max":10},"agents":[{"note":"\\u00e9 \\ud83d\\ude00 \\u2028 \\u003c\\u0026\\u003e \\u0009","name":"planner"}]},
      "zeta":{"a":[1.0,1e5,-0,2E-3,123456789012345678901234567890],"b":2}}`;
    const tampered = repack(base, (f) => f.set('/data.json', Buffer.from(rewritten)));
    expect(
      members(tampered)
        .get('/data.json')
        ?.equals(members(base).get('/data.json') as Buffer),
    ).toBe(false);
    await expect(ours(tampered)).resolves.toMatchObject({ keyId: 'release' });
    expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: true });
  });

  test('data.json with a number written otherwise (1.0 as 1) is refused by both: numbers are hashed as written', async () => {
    const tampered = repack(base, (f) => f.set('/data.json', Buffer.from((f.get('/data.json') as Buffer).toString().replace('[1.0,', '[1,'))));
    expect((await oursRefuses(tampered, 'digest_mismatch')).file).toBe('data.json');
    expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('digest mismatch') });
  });

  test('the serial is signed: a .manifest with another serial is refused by both', async () => {
    const tampered = repack(base, (f) => f.set('/.manifest', Buffer.from((f.get('/.manifest') as Buffer).toString().replace('"serial":42', '"serial":43'))));
    expect(parseManifest(members(tampered).get('/.manifest')).serial).toBe(43);
    expect((await oursRefuses(tampered, 'digest_mismatch')).file).toBe('.manifest');
    expect(await opaVerdict(tampered, { scope: 'prod' })).toMatchObject({ ok: false, message: expect.stringContaining('digest mismatch') });
  });
});

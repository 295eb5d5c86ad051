/**
 * Signed bundles verified as OPA verifies them (src/policy/bundle-signature.ts, bundle-hash.ts):
 * key selection, scope, the file list and OPA's canonical hashing of JSON files. Bundles here are
 * signed in the test with jose; test/integration/bundle-signature-opa.test.ts checks the same
 * rules against bundles signed, and verdicts given, by the real OPA.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CompactSign } from 'jose';
import { canonicalJson, bundleFileDigest, decodeUtf8, goJsonString, isStructuredFile, parseJson } from '../../src/policy/bundle-hash';
import { BUNDLE_REFUSAL_REASONS, BundleRefusedError, type BundleRefusalReason } from '../../src/policy/bundle-refusal';
import {
  type BundleSigningAlgorithm,
  type BundleVerificationKey,
  BundleVerifierConfigError,
  bundleVerifier,
  goGlob,
  unpackSignedBundle,
  verifyBundleSignature,
} from '../../src/policy/bundle-signature';
import { untar } from '../../src/policy/bundle';
import { packBundle } from '../helpers/bundle';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ec521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
const secret = Buffer.from('a shared HMAC secret for the tests');

const REGO = Buffer.from('package portcullis\n\ndecision := {"allow": true}\n');
const DATA = Buffer.from('{"b": {"y": [1.0, 2e3], "x": "é"}, "a": true}');
const MANIFEST = Buffer.from('{"revision":"r1","roots":[""],"metadata":{"serial":3}}');

const members = (extra: [string, Buffer][] = []) =>
  new Map<string, Buffer>([['/portcullis/policy.rego', REGO], ['/data.json', DATA], ['/.manifest', MANIFEST], ...extra]);

interface SignOptions {
  readonly alg?: BundleSigningAlgorithm;
  readonly key?: KeyObject | Uint8Array;
  readonly kid?: string;
  readonly claims?: Record<string, unknown>;
  /** The file list; by default every member with its OPA digest. */
  readonly files?: { name: string; hash: string; algorithm: string }[];
}

/** The listing OPA would sign for these members. */
function listing(files: ReadonlyMap<string, Buffer>) {
  return [...files]
    .filter(([name]) => name !== '/.signatures.json')
    .map(([name, bytes]) => ({ name: name.slice(1), hash: bundleFileDigest(name.slice(1), bytes, 'SHA-256').toString('hex'), algorithm: 'SHA-256' }));
}

async function jws(files: ReadonlyMap<string, Buffer>, o: SignOptions = {}): Promise<string> {
  const alg = o.alg ?? 'RS256';
  const payload = { files: o.files ?? listing(files), ...(o.claims ?? {}) };
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg, typ: 'JWT', ...(o.kid ? { kid: o.kid } : {}) })
    .sign(o.key ?? rsa.privateKey);
}

async function signed(files: ReadonlyMap<string, Buffer>, o: SignOptions = {}): Promise<Map<string, Buffer>> {
  const out = new Map(files);
  out.set('/.signatures.json', Buffer.from(JSON.stringify({ signatures: [await jws(files, o)], plugin: '_default' })));
  return out;
}

const keys = (entries: Record<string, BundleVerificationKey>) => new Map(Object.entries(entries));
const defaultKeys = keys({ k1: { algorithm: 'RS256', key: rsa.publicKey } });

async function refusal(promise: Promise<unknown>): Promise<BundleRefusedError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof BundleRefusedError) return err;
    throw err;
  }
  throw new Error('the bundle was accepted');
}

const expectRefused = async (promise: Promise<unknown>, reason: BundleRefusalReason, file?: string) => {
  const err = await refusal(promise);
  expect(err.reason).toBe(reason);
  if (file !== undefined) {
    expect(err.file).toBe(file);
    expect(err.message).toContain(file);
  }
  return err;
};

describe('canonical hashing of JSON files (OPA bundle/hash.go)', () => {
  test('reproduces the digests opa build 1.21.1 signed for a data.json and a .manifest', () => {
    // Built with `opa build -b` (OPA 1.21.1) from exactly these bytes; the hashes are from its .signatures.json.
    const data = Buffer.from('{"z":1,"a":{"y":"é\\u2028<&>\\u0001\\b\\f\\t","b":[1.0,1e5,-0,2E-3]},"m":"\\ud83d\\ude00"}');
    expect(bundleFileDigest('data.json', data, 'SHA-256').toString('hex')).toBe('4fee5aff0ae85810ba6591f4c4390e9ccbbe19a019cc07a43beac45465d4ffa9');
    const manifest = Buffer.from('{"revision":"r1","roots":[""],"rego_version":1,"metadata":{"serial":7}}');
    expect(bundleFileDigest('.manifest', manifest, 'SHA-256').toString('hex')).toBe('b1e46fdee46330dbc833ff65d646fc69350c68c7782d4244f28017fc631c9e01');
  });

  test('sorts keys by their UTF-8 bytes, keeps number literals, escapes as Go, keeps the last repeated key', () => {
    const text = '{"😀":1,"\\uffff":2,"b":[1.0,-0,1E+2],"a":{"d":"\\u0000\\u001f\\u007f</>","c":null},"a":false}';
    // UTF-16 order would put "😀" (D83D…) before U+FFFF; UTF-8 order puts EF BF BF before F0 9F.
    expect(canonicalJson(parseJson(text))).toBe('{"a":false,"b":[1.0,-0,1E+2],"\uffff":2,"😀":1}');
    expect(goJsonString('\u0000\u001f\u007f\b\f\n\r\t"\\</>&\u2028\u2029é')).toBe('"\\u0000\\u001f\u007f\\b\\f\\n\\r\\t\\"\\\\</>&\\u2028\\u2029é"');
  });

  test('an escaped lone surrogate becomes U+FFFD, as Go decodes it; a pair is one character', () => {
    expect(canonicalJson(parseJson('["\\ud800","\\udc00x","\\ud800\\u0041","\\ud83d\\ude00"]'))).toBe('["\ufffd","\ufffdx","\ufffdA","😀"]');
  });

  test('whitespace and key order do not change the digest; a value does', () => {
    const a = bundleFileDigest('x/data.json', Buffer.from('{"a":1,"b":[true,"s"]}'), 'SHA-256');
    expect(bundleFileDigest('x/data.json', Buffer.from('\ufeff{ "b" : [ true , "s" ] ,\n\t"a" : 1 }\r\n'), 'SHA-256')).toEqual(a);
    expect(bundleFileDigest('x/data.json', Buffer.from('{"a":1.0,"b":[true,"s"]}'), 'SHA-256')).not.toEqual(a);
    // Only structured files are parsed: any other file is hashed as its bytes.
    expect(isStructuredFile('x/data.json')).toBe(true);
    expect(isStructuredFile('x/other.json')).toBe(false);
    expect(isStructuredFile('data.yml')).toBe(false);
    expect(bundleFileDigest('other.json', Buffer.from('{"a":1}'), 'SHA-256')).toEqual(createHash('sha256').update('{"a":1}').digest());
  });

  test('refuses what OPA would guess at: not UTF-8, not JSON, YAML, trailing text, weak hashes', () => {
    const malformed = (name: string, bytes: Buffer, alg = 'SHA-256') => {
      try {
        bundleFileDigest(name, bytes, alg);
      } catch (err) {
        expect(err).toBeInstanceOf(BundleRefusedError);
        expect((err as BundleRefusedError).reason).toBe('malformed');
        expect((err as BundleRefusedError).message).toContain(name);
        return;
      }
      throw new Error(`${name} was hashed`);
    };
    malformed('data.json', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]));
    malformed('data.json', Buffer.from('{"a":1} x'));
    malformed('data.json', Buffer.from(''));
    malformed('data.yaml', Buffer.from('a: 1\n'));
    malformed('data.json', Buffer.from('[01]'));
    malformed('policy.rego', REGO, 'MD5');
    malformed('policy.rego', REGO, 'SHA-1');
    malformed('policy.rego', REGO, 'sha256');
    expect(bundleFileDigest('data.yaml', Buffer.from('{"a": 1}'), 'SHA-512')).toEqual(createHash('sha512').update('{"a":1}').digest());
    expect(() => decodeUtf8(Buffer.from([0xe2, 0x82]))).toThrow('UTF-8');
  });
});

describe('verifyBundleSignature', () => {
  test('accepts a signed bundle and returns the key, the scope and each file with its SHA-256', async () => {
    const files = await signed(members(), { kid: 'k1', claims: { scope: 'prod' } });
    const result = await verifyBundleSignature(files, { keys: defaultKeys, scope: 'prod' });
    expect(result).toEqual({
      keyId: 'k1',
      scope: 'prod',
      files: [
        { name: 'portcullis/policy.rego', sha256: createHash('sha256').update(REGO).digest('hex') },
        { name: 'data.json', sha256: createHash('sha256').update(DATA).digest('hex') },
        { name: '.manifest', sha256: createHash('sha256').update(MANIFEST).digest('hex') },
      ],
    });
  });

  test('every algorithm OPA verifies, with its own key type', async () => {
    const cases: [BundleSigningAlgorithm, KeyObject | Uint8Array, KeyObject | Buffer][] = [
      ['RS256', rsa.privateKey, rsa.publicKey],
      ['RS384', rsa.privateKey, rsa.publicKey],
      ['RS512', rsa.privateKey, rsa.publicKey],
      ['PS256', rsa.privateKey, rsa.publicKey],
      ['PS384', rsa.privateKey, rsa.publicKey],
      ['PS512', rsa.privateKey, rsa.publicKey],
      ['ES256', ec.privateKey, ec.publicKey],
      ['ES384', ec384.privateKey, ec384.publicKey],
      ['ES512', ec521.privateKey, ec521.publicKey],
      ['HS256', secret, secret],
      ['HS384', secret, secret],
      ['HS512', secret, secret],
    ];
    for (const [alg, signKey, verifyKey] of cases) {
      const files = await signed(members(), { alg, key: signKey, kid: 'k' });
      await expect(verifyBundleSignature(files, { keys: keys({ k: { algorithm: alg, key: verifyKey } }) })).resolves.toMatchObject({ keyId: 'k' });
      // The same signature under a key configured for another algorithm does not verify.
      const other: BundleVerificationKey = alg.startsWith('HS') ? { algorithm: 'HS512', key: secret } : { algorithm: 'RS256', key: rsa.publicKey };
      if (other.algorithm !== alg) await expectRefused(verifyBundleSignature(files, { keys: keys({ k: other }) }), 'bad_signature', '.signatures.json');
    }
  });

  test("the key is the configured key id, else the header's kid, else the payload's keyid", async () => {
    const both = keys({ k1: { algorithm: 'RS256', key: rsa.publicKey }, k2: { algorithm: 'RS256', key: rsa2.publicKey } });
    const byKid = await signed(members(), { key: rsa2.privateKey, kid: 'k2' });
    expect((await verifyBundleSignature(byKid, { keys: both })).keyId).toBe('k2');
    const byClaim = await signed(members(), { key: rsa2.privateKey, claims: { keyid: 'k2' } });
    expect((await verifyBundleSignature(byClaim, { keys: both })).keyId).toBe('k2');
    // The header's kid wins over the payload's keyid.
    const kidAndClaim = await signed(members(), { key: rsa2.privateKey, kid: 'k2', claims: { keyid: 'k1' } });
    expect((await verifyBundleSignature(kidAndClaim, { keys: both })).keyId).toBe('k2');
    // A configured key id wins over both (OPA's signing.keyid): k1 cannot verify k2's signature.
    await expectRefused(verifyBundleSignature(byKid, { keys: both, keyId: 'k1' }), 'bad_signature');
    expect((await verifyBundleSignature(byKid, { keys: both, keyId: 'k2' })).keyId).toBe('k2');
  });

  test('unknown_key: a kid that is not configured, or no key named at all', async () => {
    await expectRefused(verifyBundleSignature(await signed(members(), { kid: 'elsewhere' }), { keys: defaultKeys }), 'unknown_key', '.signatures.json');
    const err = await expectRefused(verifyBundleSignature(await signed(members()), { keys: defaultKeys }), 'unknown_key');
    expect(err.message).toContain('names no key');
  });

  test('bad_signature: another key under the same id, an altered payload, alg none', async () => {
    const files = await signed(members(), { key: rsa2.privateKey, kid: 'k1' });
    await expectRefused(verifyBundleSignature(files, { keys: defaultKeys }), 'bad_signature', '.signatures.json');

    // The payload of one token with the signature of another.
    const good = await jws(members(), { kid: 'k1' });
    const tampered = await jws(members([['/extra.rego', REGO]]), { kid: 'k1' });
    const spliced = [good.split('.')[0], tampered.split('.')[1], good.split('.')[2]].join('.');
    const swapped = new Map(members([['/extra.rego', REGO]]));
    swapped.set('/.signatures.json', Buffer.from(JSON.stringify({ signatures: [spliced] })));
    await expectRefused(verifyBundleSignature(swapped, { keys: defaultKeys }), 'bad_signature');

    const none = `${Buffer.from('{"alg":"none","kid":"k1"}').toString('base64url')}.${good.split('.')[1]}.`;
    const unsecured = new Map(members());
    unsecured.set('/.signatures.json', Buffer.from(JSON.stringify({ signatures: [none] })));
    await expectRefused(verifyBundleSignature(unsecured, { keys: defaultKeys }), 'bad_signature');
  });

  test('unsigned: no .signatures.json, or one with no signature', async () => {
    await expectRefused(verifyBundleSignature(members(), { keys: defaultKeys }), 'unsigned', '.signatures.json');
    for (const doc of ['{}', '{"signatures":[]}', '{"signatures":null}']) {
      const files = new Map(members());
      files.set('/.signatures.json', Buffer.from(doc));
      await expectRefused(verifyBundleSignature(files, { keys: defaultKeys }), 'unsigned');
    }
  });

  test('malformed: several signatures, a plugin, a field spelt in another case, not a JWS, a second signatures file', async () => {
    const token = await jws(members(), { kid: 'k1' });
    const withSignatures = (doc: unknown, extra: [string, Buffer][] = []) => {
      const files = new Map(members(extra));
      files.set('/.signatures.json', Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)));
      return verifyBundleSignature(files, { keys: defaultKeys });
    };
    await expectRefused(withSignatures({ signatures: [token, token] }), 'malformed');
    await expectRefused(withSignatures({ signatures: [token], plugin: 'custom' }), 'malformed');
    await expectRefused(withSignatures({ Signatures: [token] }), 'malformed');
    await expectRefused(withSignatures({ signatures: ['not.a-jws'] }), 'malformed');
    await expectRefused(withSignatures({ signatures: [42] }), 'malformed');
    await expectRefused(withSignatures('{"signatures": ['), 'malformed');
    await expectRefused(withSignatures({ signatures: [token] }, [['/x/signatures.json', Buffer.from('{}')]]), 'malformed', 'x/signatures.json');
    // A payload field Go would match case-insensitively ("Files") is refused, not silently read.
    const caseVariant = new CompactSign(Buffer.from(JSON.stringify({ Files: listing(members()) })))
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .sign(rsa.privateKey);
    await expectRefused(withSignatures({ signatures: [await caseVariant] }), 'malformed');
    // A listing with a weak hash.
    const md5 = listing(members()).map((f) => ({ ...f, algorithm: 'MD5' }));
    await expectRefused(verifyBundleSignature(await signed(members(), { kid: 'k1', files: md5 }), { keys: defaultKeys }), 'malformed');
  });

  test('wrong_scope: the payload scope must equal the configured one, or the key scope; none equals none', async () => {
    const prod = await signed(members(), { kid: 'k1', claims: { scope: 'prod' } });
    await expectRefused(verifyBundleSignature(prod, { keys: defaultKeys, scope: 'staging' }), 'wrong_scope', '.signatures.json');
    await expectRefused(verifyBundleSignature(prod, { keys: defaultKeys }), 'wrong_scope');
    const scopedKey = keys({ k1: { algorithm: 'RS256', key: rsa.publicKey, scope: 'prod' } });
    expect((await verifyBundleSignature(prod, { keys: scopedKey })).scope).toBe('prod');
    const unscoped = await signed(members(), { kid: 'k1' });
    expect((await verifyBundleSignature(unscoped, { keys: defaultKeys })).scope).toBeNull();
    await expectRefused(verifyBundleSignature(unscoped, { keys: defaultKeys, scope: 'prod' }), 'wrong_scope');
  });

  test('digest_mismatch, unlisted_file and missing_file name the file', async () => {
    const files = await signed(members(), { kid: 'k1' });
    const changed = new Map(files).set('/portcullis/policy.rego', Buffer.from(REGO.toString().replace('true', 'false')));
    await expectRefused(verifyBundleSignature(changed, { keys: defaultKeys }), 'digest_mismatch', 'portcullis/policy.rego');
    const added = new Map(files).set('/portcullis/extra.rego', REGO);
    await expectRefused(verifyBundleSignature(added, { keys: defaultKeys }), 'unlisted_file', 'portcullis/extra.rego');
    const removed = new Map(files);
    removed.delete('/data.json');
    await expectRefused(verifyBundleSignature(removed, { keys: defaultKeys }), 'missing_file', 'data.json');
    // JSON is hashed canonically: the same data with other whitespace and key order verifies.
    const reordered = new Map(files).set('/data.json', Buffer.from('{ "a" : true,\n "b": {"x": "\\u00e9", "y": [1.0, 2e3]} }'));
    await expect(verifyBundleSignature(reordered, { keys: defaultKeys })).resolves.toMatchObject({ keyId: 'k1' });
    const renumbered = new Map(files).set('/data.json', Buffer.from('{"a": true, "b": {"x": "é", "y": [1, 2e3]}}'));
    await expectRefused(verifyBundleSignature(renumbered, { keys: defaultKeys }), 'digest_mismatch', 'data.json');
  });

  test('excluded members are not verified, but an excluded member the signature lists must still be present', async () => {
    const files = await signed(members([['/notes/readme.txt', Buffer.from('hello')]]), { kid: 'k1' });
    const edited = new Map(files).set('/notes/readme.txt', Buffer.from('changed')).set('/notes/new.txt', Buffer.from('new'));
    await expectRefused(verifyBundleSignature(edited, { keys: defaultKeys }), 'digest_mismatch', 'notes/readme.txt');
    const result = await verifyBundleSignature(edited, { keys: defaultKeys, excludeFiles: ['notes/*.txt'] });
    expect(result.files.map((f) => f.name)).toEqual(['portcullis/policy.rego', 'data.json', '.manifest']);
    // `*` does not cross `/`, as in Go's filepath.Match.
    await expectRefused(verifyBundleSignature(edited, { keys: defaultKeys, excludeFiles: ['*.txt'] }), 'digest_mismatch');
    const gone = new Map(files);
    gone.delete('/notes/readme.txt');
    await expectRefused(verifyBundleSignature(gone, { keys: defaultKeys, excludeFiles: ['notes/*'] }), 'missing_file', 'notes/readme.txt');
  });

  test('options are checked once, when the verifier is built', () => {
    expect(() => bundleVerifier({ keys: keys({ k: { algorithm: 'ES256', key: rsa.publicKey } }) })).toThrow(BundleVerifierConfigError);
    expect(() => bundleVerifier({ keys: keys({ k: { algorithm: 'ES384', key: ec.publicKey } }) })).toThrow('prime256v1');
    expect(() => bundleVerifier({ keys: keys({ k: { algorithm: 'HS256', key: rsa.publicKey } }) })).toThrow(BundleVerifierConfigError);
    expect(() => bundleVerifier({ keys: keys({ k: { algorithm: 'RS256', key: secret } }) })).toThrow(BundleVerifierConfigError);
    expect(() => bundleVerifier({ keys: defaultKeys, keyId: 'missing' })).toThrow('missing');
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    expect(() => bundleVerifier({ keys: keys({ k: { algorithm: 'RS256', key: short } }) })).toThrow('1024-bit');
    expect(() => bundleVerifier({ keys: defaultKeys, excludeFiles: ['[a-'] })).toThrow(BundleVerifierConfigError);
    // A private key is reduced to its public half.
    expect(() => bundleVerifier({ keys: keys({ k: { algorithm: 'RS256', key: rsa.privateKey } }) })).not.toThrow();
  });

  test("goGlob follows Go's filepath.Match", () => {
    const m = (p: string, s: string) => goGlob(p).test(s);
    expect(m('*.txt', 'a.txt')).toBe(true);
    expect(m('*.txt', 'd/a.txt')).toBe(false);
    expect(m('d/?.txt', 'd/a.txt')).toBe(true);
    expect(m('[a-c]x', 'bx')).toBe(true);
    expect(m('[^a-c]x', 'dx')).toBe(true);
    expect(m('[^a-c]x', 'ax')).toBe(false);
    expect(m('\\*', '*')).toBe(true);
    expect(m('\\*', 'a')).toBe(false);
    expect(m('a.b', 'axb')).toBe(false);
    expect(m('a-b', 'a-b')).toBe(true);
    for (const bad of ['[', '[]a]', '[z-a]', 'a\\']) expect(() => goGlob(bad)).toThrow(BundleVerifierConfigError);
  });
});

describe('unpackSignedBundle', () => {
  const refusedMalformed = (bundle: Buffer, text: string) => {
    try {
      unpackSignedBundle(bundle);
    } catch (err) {
      expect(err).toBeInstanceOf(BundleRefusedError);
      expect((err as BundleRefusedError).reason).toBe('malformed');
      expect((err as BundleRefusedError).message).toContain(text);
      return;
    }
    throw new Error('unpacked');
  };

  test('names members as untar does, skipping directories', () => {
    const bundle = packBundle([
      ['/portcullis/', Buffer.alloc(0), '5'],
      ['/portcullis/policy.rego', REGO],
      ['data.json', DATA],
    ]);
    const files = unpackSignedBundle(bundle);
    expect([...files.keys()]).toEqual(['/portcullis/policy.rego', '/data.json']);
    expect(files).toEqual(untar(gunzipSync(bundle)));
  });

  test('refuses a member twice (OPA verifies each copy; a map keeps the last)', () => {
    const bundle = packBundle([
      ['/data.json', Buffer.from('{"evil": true}')],
      ['/data.json', DATA],
    ]);
    expect(untar(gunzipSync(bundle)).get('/data.json')).toEqual(DATA); // what a map would verify
    refusedMalformed(bundle, 'data.json: the archive holds it twice');
  });

  test('refuses PAX headers and names untar would normalise, and what is not gzip', () => {
    refusedMalformed(
      packBundle([
        ['PaxHeaders/x', Buffer.from('30 path=portcullis/policy.rego\n'), 'x'],
        ['/evil.txt', REGO],
      ]),
      'PAX',
    );
    refusedMalformed(packBundle([['./data.json', DATA]]), 'OPA reads it as "./data.json"');
    refusedMalformed(packBundle([['//data.json', DATA]]), 'OPA reads it as "/data.json"');
    refusedMalformed(Buffer.from('not gzip'), 'not a gzipped tar');
  });
});

test('docs/policy.md lists exactly the refusal reasons the code has', () => {
  const doc = readFileSync(path.join(__dirname, '../../docs/policy.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Signed bundles'));
  const listed = [...section.slice(0, section.indexOf('\n## ', 3) === -1 ? undefined : section.indexOf('\n## ', 3)).matchAll(/^\| `([a-z_]+)` \|/gm)].map(
    (m) => m[1],
  );
  expect(listed.sort()).toEqual(Object.keys(BUNDLE_REFUSAL_REASONS).sort());
});

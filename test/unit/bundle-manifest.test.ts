/**
 * The bundle manifest and the ordering rule (src/policy/bundle-manifest.ts, docs/policy-lifecycle.md
 * "Order"): `metadata.serial` read strictly, and a candidate accepted only above the highest
 * serial accepted before, or equal to it with the same bytes.
 */
import { BundleRefusedError, type BundleRefusalReason } from '../../src/policy/bundle-refusal';
import { checkSerial, EMPTY_MANIFEST, parseManifest } from '../../src/policy/bundle-manifest';

const refused = (fn: () => unknown): BundleRefusedError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof BundleRefusedError) return err;
    throw err;
  }
  throw new Error('accepted');
};
const expectReason = (fn: () => unknown, reason: BundleRefusalReason) => {
  const err = refused(fn);
  expect(err.reason).toBe(reason);
  expect(err.file).toBe('.manifest');
  return err;
};
const manifest = (doc: unknown) => parseManifest(Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)));

describe('parseManifest', () => {
  test('reads what opa build writes: revision, roots, rego_version, wasm, metadata with the serial', () => {
    const m = manifest(
      '{"revision":"v42","roots":["/portcullis/"],"rego_version":1,"wasm":[{"entrypoint":"portcullis/decision","module":"/policy.wasm"}],"metadata":{"serial":42,"team":"sec","nested":{"a":[1.5,true,null]}}}',
    );
    expect(m).toEqual({
      revision: 'v42',
      roots: ['portcullis'],
      regoVersion: 1,
      wasm: [{ entrypoint: 'portcullis/decision', module: '/policy.wasm' }],
      serial: 42,
      metadata: { serial: 42, team: 'sec', nested: { a: [1.5, true, null] } },
    });
  });

  test('a bundle without a manifest, or a manifest without metadata, has no serial; roots default to everything', () => {
    expect(parseManifest(null)).toBe(EMPTY_MANIFEST);
    expect(manifest({ revision: '' })).toEqual({ revision: null, roots: [''], regoVersion: null, wasm: [], serial: null, metadata: null });
    expect(manifest({ metadata: { other: 1 } }).serial).toBeNull();
    expect(manifest({ metadata: null }).metadata).toBeNull();
  });

  test('serial 0 and 2^53 − 1 are accepted', () => {
    expect(manifest({ metadata: { serial: 0 } }).serial).toBe(0);
    expect(manifest(`{"metadata":{"serial":${Number.MAX_SAFE_INTEGER}}}`).serial).toBe(Number.MAX_SAFE_INTEGER);
  });

  test('bad_serial: a serial that is not a non-negative safe integer written as one', () => {
    for (const literal of ['-1', '-0', '7.0', '7e0', '1.5', '"7"', 'null', 'true', '[7]', '{}', String(Number.MAX_SAFE_INTEGER + 1), '99999999999999999999']) {
      const err = expectReason(() => manifest(`{"metadata":{"serial":${literal}}}`), 'bad_serial');
      expect(err.message).toContain('metadata.serial');
    }
  });

  test('bad_manifest: not JSON, not an object, fields of the wrong type', () => {
    for (const text of [
      '',
      '{',
      '[]',
      '{"revision":1}',
      '{"roots":"x"}',
      '{"roots":[1]}',
      '{"rego_version":"1"}',
      '{"wasm":{}}',
      '{"metadata":[]}',
      '{"a":1} trailing',
    ]) {
      expectReason(() => manifest(text), 'bad_manifest');
    }
  });
});

describe('checkSerial', () => {
  const A = 'a'.repeat(64);
  const B = 'b'.repeat(64);

  test('greater than the floor is newer; no floor yet is first', () => {
    expect(checkSerial(8, { serial: 7, bundleSha256: A }, B, true)).toBe('newer');
    expect(checkSerial(0, null, A, true)).toBe('first');
  });

  test('equal with the same bytes is the same bundle (a restart, a re-poll)', () => {
    expect(checkSerial(7, { serial: 7, bundleSha256: A }, A, true)).toBe('same');
    expect(checkSerial(7, { serial: 7, bundleSha256: A.toUpperCase() }, A, true)).toBe('same');
  });

  test('rollback: below the floor, or equal with other bytes (or bytes not recorded)', () => {
    expect(expectReason(() => checkSerial(6, { serial: 7, bundleSha256: A }, A, true), 'rollback').message).toContain('below 7');
    expect(expectReason(() => checkSerial(7, { serial: 7, bundleSha256: A }, B, true), 'rollback').message).toContain('other bundle bytes');
    expectReason(() => checkSerial(7, { serial: 7, bundleSha256: null }, A, true), 'rollback');
    // The rule holds without signing too, whenever the bundle carries a serial.
    expectReason(() => checkSerial(6, { serial: 7, bundleSha256: A }, A, false), 'rollback');
  });

  test('no_serial when required; without signing a bundle without a serial is unordered', () => {
    expectReason(() => checkSerial(null, { serial: 7, bundleSha256: A }, A, true), 'no_serial');
    expectReason(() => checkSerial(null, null, A, true), 'no_serial');
    expect(checkSerial(null, { serial: 7, bundleSha256: A }, A, false)).toBe('unordered');
  });
});

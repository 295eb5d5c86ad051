/**
 * The two formats the trail's signatures rest on: RFC 6962 Merkle roots (checked against the
 * RFC's recursive definition and its known empty-tree and empty-leaf hashes) and C2SP signed
 * notes with Go-compatible key encodings.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EMPTY_ROOT, leafHash, MerkleFrontier, nodeHash } from '../../src/audit/merkle';
import { checkpointBody, generateSignerKey, parseCheckpointBody, parseNote, parseSignerKey, parseVerifierKey, verifyNote } from '../../src/audit/signed-note';

/** RFC 6962 §2.1 MTH, written straight from the definition. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1)
    return createHash('sha256')
      .update(Buffer.from([0]))
      .update(leaves[0])
      .digest();
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return createHash('sha256')
    .update(Buffer.from([1]))
    .update(mth(leaves.slice(0, k)))
    .update(mth(leaves.slice(k)))
    .digest();
}

test('known hashes: the empty tree and the empty leaf', () => {
  expect(EMPTY_ROOT.toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  expect(leafHash('').toString('hex')).toBe('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
});

test('the incremental frontier gives the RFC 6962 root at every size up to 70', () => {
  const leaves = Array.from({ length: 70 }, () => randomBytes(1 + Math.floor(Math.random() * 40)));
  const f = new MerkleFrontier();
  expect(f.root()).toEqual(mth([]));
  leaves.forEach((leaf, i) => {
    f.push(leafHash(leaf));
    expect(f.size).toBe(i + 1);
    expect(f.root().equals(mth(leaves.slice(0, i + 1)))).toBe(true);
  });
  const copy = f.clone();
  f.push(leafHash('more'));
  expect(copy.root().equals(mth(leaves))).toBe(true);
  expect(nodeHash(Buffer.alloc(32), Buffer.alloc(32))).toHaveLength(32);
});

test('a signed note round-trips, and any change to its text or signature is caught', () => {
  const signer = parseSignerKey(generateSignerKey('example.com/log'));
  const verifier = parseVerifierKey(signer.verifierKey);
  expect(verifier.keyId).toBe(signer.keyId);
  const body = checkpointBody('example.com/log', 42, Buffer.alloc(32, 7));
  const note = signer.sign(body);
  expect(note).toMatch(/^example\.com\/log\n42\n[A-Za-z0-9+/]{43}=\n\n\u2014 example\.com\/log [A-Za-z0-9+/=]+\n$/u);
  expect(verifyNote(parseNote(note), [verifier])).toBe(verifier);
  expect(parseCheckpointBody(parseNote(note).text)).toMatchObject({ origin: 'example.com/log', size: 42 });
  expect(() => verifyNote(parseNote(note.replace('\n42\n', '\n43\n')), [verifier])).toThrow(/forged or altered/);
  const other = parseVerifierKey(parseSignerKey(generateSignerKey('example.com/log')).verifierKey);
  expect(verifyNote(parseNote(note), [other])).toBeNull();
  expect(() => parseNote('no blank line\n')).toThrow(/malformed/);
  expect(() => parseVerifierKey(signer.verifierKey.replace(/\+[0-9a-f]{8}\+/, '+00000000+'))).toThrow(/id does not match/);
});

test('keys whose base64 holds "+" parse (split at the first separators only), and names are checked', () => {
  let found = false;
  for (let i = 0; i < 200 && !found; i++) {
    const key = generateSignerKey('n');
    const signer = parseSignerKey(key);
    found = signer.verifierKey.split('+').length > 3;
    expect(parseVerifierKey(signer.verifierKey).keyId).toBe(signer.keyId);
  }
  expect(found).toBe(true);
  expect(() => generateSignerKey('has space')).toThrow(/invalid key name/);
  expect(() => generateSignerKey('a+b')).toThrow(/invalid key name/);
  expect(() => parseSignerKey('garbage')).toThrow(/not a signer key/);
});

test('a signer key never shows its private half when printed', () => {
  const text = generateSignerKey('example.com/log');
  const seed = text.split('+').slice(4).join('+');
  const signer = parseSignerKey(text);
  expect(JSON.stringify(signer)).not.toContain(seed);
  expect(require('node:util').inspect(signer)).not.toContain(seed);
});

/**
 * Ed25519 signing keys and C2SP signed notes (https://c2sp.org/signed-note), the format of
 * transparency-log checkpoints (https://c2sp.org/tlog-checkpoint). Keys use the text encodings
 * of Go's golang.org/x/mod/sumdb/note, so other tools can check Portcullis's checkpoints:
 *
 *   signer key    PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 ‖ 32-byte seed)>
 *   verifier key  <name>+<key id hex>+<base64(0x01 ‖ 32-byte public key)>
 *   key id        first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)
 *   signature     — <name> <base64(key id ‖ 64-byte Ed25519 signature)>   (U+2014, then a space)
 *
 * A signature covers the note's text up to and including its last newline, not the blank line
 * that separates text from signatures. This module is used by both the writer and the verifier;
 * it holds no state.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

const ALG_ED25519 = 0x01;
const SIG_PREFIX = '\u2014 ';
/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const NAME = /^[^\s+]+$/u;

/** A key that can sign notes. Its private half never leaves this object. */
export interface NoteSigner {
  readonly name: string;
  /** Key id as 8 hex digits. */
  readonly keyId: string;
  /** The verifier key text to publish. */
  readonly verifierKey: string;
  sign(text: string): string;
}

/** A key that can check notes. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: string;
  readonly publicKey: KeyObject;
}

function keyId(name: string, publicKey: Buffer): string {
  return createHash('sha256')
    .update(`${name}\n`)
    .update(Buffer.from([ALG_ED25519]))
    .update(publicKey)
    .digest()
    .subarray(0, 4)
    .toString('hex');
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x as string, 'base64url');
}

/** Splits at the first `n` '+' only: the base64 key at the end may itself hold '+'. */
function chop(text: string, n: number): string[] {
  const parts: string[] = [];
  let rest = text.trim();
  for (let i = 0; i < n; i++) {
    const at = rest.indexOf('+');
    if (at < 0) return [];
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  return [...parts, rest];
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new Error(`invalid key name "${name}": it must be non-empty, without spaces or '+'`);
}

/** Generates a new signer key; returns its text encoding. */
export function generateSignerKey(name: string): string {
  checkName(name);
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = der.subarray(der.length - 32);
  const id = keyId(name, rawPublicKey(privateKey));
  return `PRIVATE+KEY+${name}+${id}+${Buffer.concat([Buffer.from([ALG_ED25519]), seed]).toString('base64')}`;
}

/** Parses a signer key's text encoding. Throws a message that never includes the key. */
export function parseSignerKey(text: string): NoteSigner {
  const parts = chop(text, 4);
  if (parts.length !== 5 || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') throw new Error('not a signer key (expected PRIVATE+KEY+<name>+<id>+<key>)');
  const [, , name, id, encoded] = parts;
  checkName(name);
  const raw = Buffer.from(encoded, 'base64');
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) throw new Error('the signer key is not an Ed25519 key');
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, raw.subarray(1)]), format: 'der', type: 'pkcs8' });
  const publicKey = rawPublicKey(privateKey);
  if (keyId(name, publicKey) !== id) throw new Error('the signer key id does not match its key');
  const verifierKey = `${name}+${id}+${Buffer.concat([Buffer.from([ALG_ED25519]), publicKey]).toString('base64')}`;
  return Object.freeze({
    name,
    keyId: id,
    verifierKey,
    sign(body: string): string {
      if (!body.endsWith('\n') || body.includes('\n\n')) throw new Error('a note body ends with one newline and has no blank line');
      const signature = sign(null, Buffer.from(body, 'utf8'), privateKey);
      return `${body}\n${SIG_PREFIX}${name} ${Buffer.concat([Buffer.from(id, 'hex'), signature]).toString('base64')}\n`;
    },
  });
}

/** Parses a verifier key's text encoding. */
export function parseVerifierKey(text: string): NoteVerifier {
  const parts = chop(text, 2);
  if (parts.length !== 3) throw new Error('not a verifier key (expected <name>+<id>+<key>)');
  const [name, id, encoded] = parts;
  checkName(name);
  const raw = Buffer.from(encoded, 'base64');
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) throw new Error('the verifier key is not an Ed25519 key');
  const publicKey = raw.subarray(1);
  if (keyId(name, publicKey) !== id) throw new Error('the verifier key id does not match its key');
  return Object.freeze({
    name,
    keyId: id,
    publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKey.toString('base64url') }, format: 'jwk' }),
  });
}

/** A note's text and its signature lines, parsed but not yet checked. */
export interface ParsedNote {
  readonly text: string;
  readonly signatures: readonly { readonly name: string; readonly keyId: string; readonly signature: Buffer }[];
}

/** Splits a signed note; throws when it is malformed. */
export function parseNote(note: string): ParsedNote {
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) throw new Error('malformed note: no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const signatures = note
    .slice(split + 2, -1)
    .split('\n')
    .map((line) => {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/u.exec(line);
      if (!m) throw new Error('malformed note: a signature line is not "— <name> <base64>"');
      const raw = Buffer.from(m[2], 'base64');
      if (raw.length < 5) throw new Error('malformed note: a signature is too short');
      return { name: m[1], keyId: raw.subarray(0, 4).toString('hex'), signature: raw.subarray(4) };
    });
  return { text, signatures };
}

/**
 * Checks a note against trusted keys. Returns the verifier that signed it, null when none of the
 * signatures is by a known key, and throws when a known key's signature is wrong (a forgery).
 */
export function verifyNote(note: ParsedNote, keys: readonly NoteVerifier[]): NoteVerifier | null {
  for (const sig of note.signatures) {
    const key = keys.find((k) => k.name === sig.name && k.keyId === sig.keyId);
    if (!key) continue;
    if (!verify(null, Buffer.from(note.text, 'utf8'), key.publicKey, sig.signature)) {
      throw new Error(`the signature by ${key.name}+${key.keyId} does not match the note (forged or altered)`);
    }
    return key;
  }
  return null;
}

/** A tlog checkpoint's body: origin, tree size, base64 root hash. */
export function checkpointBody(origin: string, size: number, root: Buffer): string {
  return `${origin}\n${size}\n${root.toString('base64')}\n`;
}

/** Reads a checkpoint body; throws when it is not one. */
export function parseCheckpointBody(text: string): { origin: string; size: number; root: Buffer } {
  const lines = text.split('\n');
  if (lines.length < 4 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error('not a checkpoint: expected origin, tree size and root hash lines');
  const root = Buffer.from(lines[2], 'base64');
  if (root.length !== 32 || root.toString('base64') !== lines[2]) throw new Error('not a checkpoint: the root hash is not 32 bytes of base64');
  return { origin: lines[0], size: Number(lines[1]), root };
}

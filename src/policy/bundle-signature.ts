/**
 * Verifying a signed OPA bundle as OPA does (bundle/verify.go, bundle/bundle.go in
 * open-policy-agent/opa), so a bundle signed with `opa build --signing-key` is accepted here
 * exactly when OPA would accept it. The attack it closes: a bundle whose files were changed,
 * added or removed after signing, signed by another key, or meant for another scope.
 *
 * `.signatures.json` is `{"signatures": ["<compact JWS>"]}` (exactly one). Its payload lists
 * `files: [{name, hash, algorithm}]` and may carry `keyid`, `scope`, `iss`, `iat`. The key is
 * the configured key id, else the JWS header's `kid`, else the payload's `keyid` (OPA's order);
 * the JWS must verify with that key's algorithm; the payload's `scope` must equal the configured
 * one (absent on both sides counts as equal). Then every member but `.signatures.json` and the
 * excluded ones must be listed with a matching digest (bundle-hash.ts: JSON hashed
 * canonically), and every listed member must be present (an excluded one too, as in OPA).
 *
 * `unpackSignedBundle` reads the archive for it, refusing what `untar` would read otherwise than
 * OPA (a member twice, PAX headers, names `untar` normalises).
 *
 * Stricter than OPA, on purpose: an unsigned bundle is always refused (OPA accepts one when no
 * key id is configured); a signing plugin, several signatures, MD5 and SHA-1 digests, YAML data
 * that is not JSON, a member other than `/.signatures.json` whose name ends in `signatures.json`
 * (OPA would read it as the signatures), and JSON fields whose names differ from OPA's only in
 * case (Go would match them) are refused as `malformed`.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { compactVerify } from 'jose';
import type { PolicySigningConfig } from '../config/types';
import { revealSecret } from '../secret';
import { tarEntries } from './bundle';
import { bundleFileDigest, decodeUtf8, JsonSyntaxError, type JsonNode, parseJson } from './bundle-hash';
import { BundleRefusedError } from './bundle-refusal';

/** The JWS algorithms OPA verifies bundles with. */
export const BUNDLE_SIGNING_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512'] as const;

/** A JWS algorithm OPA verifies bundles with. */
export type BundleSigningAlgorithm = (typeof BUNDLE_SIGNING_ALGORITHMS)[number];

/** One configured verification key. */
export interface BundleVerificationKey {
  readonly algorithm: BundleSigningAlgorithm;
  /** The public key (a private key is reduced to its public half), or the HMAC secret's bytes. */
  readonly key: KeyObject | Buffer;
  /** This key's scope, used when `options.scope` is not given (OPA's per-key scope). */
  readonly scope?: string;
}

/** What to verify against. */
export interface BundleVerificationOptions {
  /** Verification keys by key id. */
  readonly keys: ReadonlyMap<string, BundleVerificationKey>;
  /** The key id to use whatever the bundle names (OPA's `signing.keyid`); else the bundle's `kid`/`keyid` selects. */
  readonly keyId?: string;
  /** The scope the payload must carry; absent: the key's scope, else none. */
  readonly scope?: string;
  /** Members left out of verification: Go `filepath.Match` patterns on names without the leading `/`. */
  readonly excludeFiles?: readonly string[];
}

/** A bundle that verified. */
export interface VerifiedBundle {
  /** The id of the key that verified it. */
  readonly keyId: string;
  /** The payload's scope, or null when it has none. */
  readonly scope: string | null;
  /** The members verified (not the excluded ones), named as the signature names them, with the SHA-256 of their bytes. */
  readonly files: readonly { readonly name: string; readonly sha256: string }[];
}

/** The signatures file, as untar names it. */
export const SIGNATURES_FILE = '/.signatures.json';

/**
 * The members of a bundle (.tar.gz) for verification, by name with one leading `/` as `untar`
 * names them, refusing (`malformed`) what `untar` would read otherwise than OPA: a name twice
 * (OPA verifies every copy; a map keeps the last), a PAX extended header (OPA applies its
 * `path`; `untar` does not), a name that `untar` normalises (`./x`, `//x`: OPA compares it as
 * stored, minus one leading `/`). Directories and links are skipped, as OPA skips them. Load
 * exactly these members after verification, never the original bytes.
 */
export function unpackSignedBundle(bundle: Buffer): Map<string, Buffer> {
  let tar: Buffer;
  try {
    tar = gunzipSync(bundle);
  } catch (err) {
    throw new BundleRefusedError('malformed', `not a gzipped tar bundle (${(err as Error).message})`);
  }
  const files = new Map<string, Buffer>();
  for (const { name, type, body } of tarEntries(tar)) {
    if (type === 'x' || type === 'g')
      throw new BundleRefusedError('malformed', `the archive has a PAX extended header (${name}), which OPA applies to member names and this reader does not`);
    if ((type !== '0' && type !== '\0') || name.endsWith('/')) continue;
    const key = `/${name.replace(/^\.?\/+/, '')}`;
    const asOpa = name.replace(/^\//, '');
    if (key.slice(1) !== asOpa)
      throw new BundleRefusedError(
        'malformed',
        `member ${JSON.stringify(name)}: OPA reads it as ${JSON.stringify(asOpa)}, not ${JSON.stringify(key.slice(1))}`,
        asOpa,
      );
    if (files.has(key))
      throw new BundleRefusedError('malformed', `${asOpa}: the archive holds it twice (OPA verifies each copy; only one would be loaded here)`, asOpa);
    files.set(key, Buffer.from(body));
  }
  return files;
}

const HMAC = /^HS/;
const EC_CURVES: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

/** Why an option is unusable (a caller's mistake, not a refused bundle). */
export class BundleVerifierConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleVerifierConfigError';
  }
}

interface PreparedKey {
  readonly algorithm: BundleSigningAlgorithm;
  readonly key: KeyObject | Uint8Array;
  readonly scope: string;
}

/**
 * Checks the options once and returns the verifier. Throws BundleVerifierConfigError for a key
 * that does not fit its algorithm, a configured key id with no key, or a bad exclude pattern.
 */
export function bundleVerifier(options: BundleVerificationOptions): (files: ReadonlyMap<string, Buffer>) => Promise<VerifiedBundle> {
  const keys = new Map<string, PreparedKey>();
  for (const [id, entry] of options.keys) keys.set(id, prepareKey(id, entry));
  if (options.keyId !== undefined && !keys.has(options.keyId))
    throw new BundleVerifierConfigError(`no verification key has the configured key id ${JSON.stringify(options.keyId)}`);
  const excluded = (options.excludeFiles ?? []).map(goGlob);
  const isExcluded = (name: string) => excluded.some((re) => re.test(name));
  return (files) => verify(files, keys, options, isExcluded);
}

/** Verifies the members of a bundle (as `untar` returns them). Throws BundleRefusedError. */
export function verifyBundleSignature(files: ReadonlyMap<string, Buffer>, options: BundleVerificationOptions): Promise<VerifiedBundle> {
  return bundleVerifier(options)(files);
}

function prepareKey(id: string, entry: BundleVerificationKey): PreparedKey {
  const { algorithm } = entry;
  if (!(BUNDLE_SIGNING_ALGORITHMS as readonly string[]).includes(algorithm))
    throw new BundleVerifierConfigError(`key ${id}: unsupported algorithm ${algorithm}`);
  if (HMAC.test(algorithm)) {
    if (!Buffer.isBuffer(entry.key) || entry.key.length === 0)
      throw new BundleVerifierConfigError(`key ${id}: ${algorithm} needs the HMAC secret as non-empty bytes`);
    return { algorithm, key: new Uint8Array(entry.key), scope: entry.scope ?? '' };
  }
  if (Buffer.isBuffer(entry.key)) throw new BundleVerifierConfigError(`key ${id}: ${algorithm} needs a key object, not bytes`);
  const key = entry.key.type === 'private' ? createPublicKey(entry.key) : entry.key;
  const type = key.asymmetricKeyType;
  const fits = algorithm.startsWith('ES')
    ? type === 'ec' && key.asymmetricKeyDetails?.namedCurve === EC_CURVES[algorithm]
    : type === 'rsa' || (algorithm.startsWith('PS') && type === 'rsa-pss');
  if (!fits)
    throw new BundleVerifierConfigError(
      `key ${id}: a ${type} key${key.asymmetricKeyDetails?.namedCurve ? ` on ${key.asymmetricKeyDetails.namedCurve}` : ''} cannot verify ${algorithm}`,
    );
  // jose (like RFC 7518 §3.3) refuses RSA keys under 2048 bits; say so now, not at the first bundle.
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (type !== 'ec' && bits !== undefined && bits < 2048)
    throw new BundleVerifierConfigError(`key ${id}: a ${bits}-bit RSA key is too short; 2048 bits at least`);
  return { algorithm, key, scope: entry.scope ?? '' };
}

async function verify(
  files: ReadonlyMap<string, Buffer>,
  keys: ReadonlyMap<string, PreparedKey>,
  options: BundleVerificationOptions,
  isExcluded: (name: string) => boolean,
): Promise<VerifiedBundle> {
  const token = readSignatures(files.get(SIGNATURES_FILE));
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every(isBase64Url)) throw malformed('the JWS is not in compact serialisation (three base64url parts)');
  const header = decodePart(parts[0], 'JWS header');
  const payload = readPayload(decodePart(parts[1], 'JWS payload'));

  // OPA's order: the configured key id, the header's kid (when a string), the payload's keyid.
  const kid = header.kind === 'object' ? header.entries.get('kid') : undefined;
  const keyId = options.keyId || (kid?.kind === 'string' && kid.value) || payload.keyid;
  if (!keyId)
    throw new BundleRefusedError(
      'unknown_key',
      '.signatures.json: the signature names no key (no kid, no keyid) and no key id is configured',
      '.signatures.json',
    );
  const key = keys.get(keyId);
  if (!key)
    throw new BundleRefusedError('unknown_key', `.signatures.json: signed with key ${JSON.stringify(keyId)}, which is not configured`, '.signatures.json');
  try {
    await compactVerify(token, key.key, { algorithms: [key.algorithm] });
  } catch (err) {
    throw new BundleRefusedError(
      'bad_signature',
      `.signatures.json: the signature does not verify with key ${JSON.stringify(keyId)} (${key.algorithm}): ${(err as Error).message}`,
      '.signatures.json',
    );
  }
  const scope = options.scope || key.scope;
  if (payload.scope !== scope) {
    throw new BundleRefusedError(
      'wrong_scope',
      `.signatures.json: signed for scope ${JSON.stringify(payload.scope)}, expected ${JSON.stringify(scope)}`,
      '.signatures.json',
    );
  }

  const listed = new Map(payload.files.map((f) => [f.name, f]));
  const verified: { name: string; sha256: string }[] = [];
  for (const [member, bytes] of files) {
    if (member === SIGNATURES_FILE) continue;
    const name = member.replace(/^\//, '');
    if (name.endsWith('signatures.json'))
      throw malformed(`${name}: OPA would read this member as the bundle's signatures; only /.signatures.json may hold them`, name);
    if (isExcluded(name)) {
      listed.delete(name);
      continue;
    }
    const entry = listed.get(name);
    if (!entry) throw new BundleRefusedError('unlisted_file', `${name}: in the bundle but not listed in its signature`, name);
    if (!entry.algorithm) throw malformed(`${name}: the signature gives no hash algorithm for it`, name);
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(entry.hash)) throw malformed(`${name}: the signed digest is not hex`, name);
    const digest = bundleFileDigest(name, bytes, entry.algorithm);
    if (!digest.equals(Buffer.from(entry.hash, 'hex'))) {
      throw new BundleRefusedError('digest_mismatch', `${name}: digest mismatch (signed ${entry.hash.toLowerCase()}, found ${digest.toString('hex')})`, name);
    }
    listed.delete(name);
    verified.push({ name, sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  if (listed.size > 0) {
    const names = [...listed.keys()];
    throw new BundleRefusedError('missing_file', `${names.join(', ')}: listed in the signature but not in the bundle`, names[0]);
  }
  return { keyId, scope: payload.scope || null, files: verified };
}

const malformed = (message: string, file = '.signatures.json') => new BundleRefusedError('malformed', message, file);

const isBase64Url = (s: string) => /^[A-Za-z0-9_-]*$/.test(s) && s.length % 4 !== 1;

function parseStructured(bytes: Buffer, what: string): JsonNode {
  try {
    return parseJson(decodeUtf8(bytes));
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw malformed(`${what}: not JSON (${err.message})`);
    throw err;
  }
}

function decodePart(part: string, what: string): JsonNode {
  const node = parseStructured(Buffer.from(part, 'base64url'), `.signatures.json: the ${what}`);
  if (node.kind !== 'object') throw malformed(`.signatures.json: the ${what} is not a JSON object`);
  return node;
}

/** The one JWS of `.signatures.json`. */
function readSignatures(bytes: Buffer | undefined): string {
  if (!bytes) throw new BundleRefusedError('unsigned', 'the bundle has no .signatures.json', '.signatures.json');
  const doc = parseStructured(bytes, '.signatures.json');
  if (doc.kind !== 'object') throw malformed('.signatures.json: not a JSON object');
  const fields = goFields(doc, ['signatures', 'plugin'], '.signatures.json');
  const plugin = optionalString(fields.plugin, '.signatures.json: plugin');
  if (plugin && plugin !== '_default') throw malformed(`.signatures.json: signing plugin ${JSON.stringify(plugin)} is not supported (only OPA's default)`);
  const list = fields.signatures;
  if (!list || (list.kind === 'literal' && list.literal === 'null'))
    throw new BundleRefusedError('unsigned', '.signatures.json holds no signature', '.signatures.json');
  if (list.kind !== 'array' || !list.items.every((t) => t.kind === 'string')) throw malformed('.signatures.json: signatures is not a list of strings');
  if (list.items.length === 0) throw new BundleRefusedError('unsigned', '.signatures.json holds no signature', '.signatures.json');
  if (list.items.length > 1) throw malformed(`.signatures.json: ${list.items.length} signatures; exactly one is supported, as in OPA`);
  return (list.items[0] as { value: string }).value;
}

interface Payload {
  readonly keyid: string;
  readonly scope: string;
  readonly files: readonly { readonly name: string; readonly hash: string; readonly algorithm: string }[];
}

/** The payload, typed as Go decodes it into OPA's DecodedSignature (null leaves a field empty). */
function readPayload(node: JsonNode): Payload {
  const what = '.signatures.json: the JWS payload';
  const fields = goFields(node, ['keyid', 'scope', 'iss', 'iat', 'files'], what);
  optionalString(fields.iss, `${what}: iss`);
  const iat = fields.iat;
  if (iat && !(iat.kind === 'literal' && iat.literal === 'null')) {
    if (iat.kind !== 'number' || !/^-?\d+$/.test(iat.literal) || BigInt(iat.literal) > 2n ** 63n - 1n || BigInt(iat.literal) < -(2n ** 63n)) {
      throw malformed(`${what}: iat is not a 64-bit integer`);
    }
  }
  const files: Payload['files'][number][] = [];
  const list = fields.files;
  if (list && !(list.kind === 'literal' && list.literal === 'null')) {
    if (list.kind !== 'array') throw malformed(`${what}: files is not a list`);
    for (const item of list.items) {
      if (item.kind === 'literal' && item.literal === 'null') continue; // Go: a zero FileInfo
      const f = goFields(item, ['name', 'hash', 'algorithm'], `${what}: files[]`);
      files.push({
        name: optionalString(f.name, `${what}: files[].name`),
        hash: optionalString(f.hash, `${what}: files[].hash`),
        algorithm: optionalString(f.algorithm, `${what}: files[].algorithm`),
      });
    }
  }
  return { keyid: optionalString(fields.keyid, `${what}: keyid`), scope: optionalString(fields.scope, `${what}: scope`), files };
}

/** An object's known fields; a key that Go would match case-insensitively to one, but is spelt otherwise, is refused. */
function goFields(node: JsonNode, names: readonly string[], what: string): Record<string, JsonNode | undefined> {
  if (node.kind !== 'object') throw malformed(`${what} is not a JSON object`);
  const out: Record<string, JsonNode | undefined> = {};
  for (const [key, value] of node.entries) {
    const folded = key
      .toLowerCase()
      .replace(/\u017f/g, 's')
      .replace(/\u212a/g, 'k');
    const name = names.find((n) => n === folded);
    if (name === undefined) continue;
    if (key !== name) throw malformed(`${what}: field ${JSON.stringify(key)} is spelt unlike OPA's ${JSON.stringify(name)}`);
    out[name] = value;
  }
  return out;
}

function optionalString(node: JsonNode | undefined, what: string): string {
  if (!node || (node.kind === 'literal' && node.literal === 'null')) return '';
  if (node.kind !== 'string') throw malformed(`${what} is not a string`);
  return node.value;
}

/**
 * Go's filepath.Match as a regular expression: `*` any run of characters but `/`, `?` one
 * character but `/`, `[...]` a class (`^` negates, `a-z` ranges), `\` escapes. A pattern Go
 * calls bad (it then matches nothing) is refused.
 */
export function goGlob(pattern: string): RegExp {
  const bad = () => new BundleVerifierConfigError(`exclude pattern ${JSON.stringify(pattern)} is not a valid filepath.Match pattern`);
  const esc = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  const escInClass = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  const chars = [...pattern];
  let re = '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      if (++i >= chars.length) throw bad();
      re += esc(chars[i]);
    } else if (c === '[') {
      let cls = '';
      i++;
      if (chars[i] === '^') {
        cls += '^';
        i++;
      }
      let ranges = 0;
      const one = (): string => {
        let ch = chars[i];
        if (ch === undefined || ch === '-' || ch === ']') throw bad();
        if (ch === '\\') ch = chars[++i];
        if (ch === undefined) throw bad();
        i++;
        return ch;
      };
      while (chars[i] !== ']' || ranges === 0) {
        const lo = one();
        let hi = lo;
        if (chars[i] === '-') {
          i++;
          hi = one();
          if ((hi.codePointAt(0) as number) < (lo.codePointAt(0) as number)) throw bad();
        }
        cls += lo === hi ? escInClass(lo) : `${escInClass(lo)}-${escInClass(hi)}`;
        ranges++;
      }
      re += `[${cls}]`;
    } else re += esc(c);
  }
  return new RegExp(`^${re}$`, 'u');
}

/** The verification options of a configured key (policy.signing): the key is the only one, and is used whatever the bundle names. */
export function verificationOptions(signing: PolicySigningConfig): BundleVerificationOptions {
  const key = 'pem' in signing.key ? createPublicKey(signing.key.pem) : Buffer.from(revealSecret(signing.key.secret), 'utf8');
  return {
    keys: new Map([[signing.keyId, { algorithm: signing.algorithm as BundleSigningAlgorithm, key }]]),
    keyId: signing.keyId,
    ...(signing.scope !== null ? { scope: signing.scope } : {}),
    excludeFiles: signing.excludeFiles,
  };
}

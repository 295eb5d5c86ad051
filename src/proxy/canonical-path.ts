/**
 * Canonicalises the request target once. The result is both what the policy judges and what
 * is forwarded, so check and dispatch cannot disagree (dapr PR #9804). Anything a server might
 * read two ways is refused rather than repaired: dot segments (raw or encoded), empty segments
 * (`//`, read as a host by some parsers), encoded `/` `\` `%` `;` (double encoding, CVE-2025-0108),
 * raw `;` path parameters (CVE-2026-73553), `\`, fragments, and control or non-ASCII bytes.
 * Percent-escapes of non-ASCII must be valid UTF-8 (no overlong forms like `%C0%AE`, no
 * surrogates) whose text is unchanged by NFC and NFKC: servers that normalise would otherwise
 * read `%EF%BC%8E%EF%BC%8E` (fullwidth "..") as a dot segment or `%EF%BD%81dmin` as "admin".
 * In the query, escapes must be valid UTF-8 (URLSearchParams would replace them with U+FFFD);
 * `+` means a space, as URLSearchParams reads it, and is forwarded as `%20` so that upstreams
 * reading RFC 3986 (where `+` is a plus) read a space too.
 */
import { TextDecoder } from 'node:util';
import { GatewayError } from '../errors';

/** The canonical form of a request target. */
export interface CanonicalTarget {
  /** Canonical path: unreserved characters decoded, other escapes upper-cased. Starts with '/'. */
  readonly path: string;
  /** Query parameters in order, decoded. */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** The query string as it is forwarded (re-serialised from `query`), without '?'. */
  readonly search: string;
}

const HEX = '0123456789ABCDEF';
// pchar per RFC 3986 minus ';' (refused) plus '/' as the separator; '%' is handled separately.
const ALLOWED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/") ALLOWED[c.charCodeAt(0)] = 1;

function isUnreserved(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function bad(why: string): never {
  throw new GatewayError('PC_BAD_PATH', `unsafe request path: ${why}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads the run of percent-escapes of bytes >= 0x80 starting at `i` (where `%` is) and checks
 * that it is valid UTF-8 (one run holds whole characters: UTF-8 never splits one across ASCII).
 * Returns the index after the run, or `i` when the escape at `i` is ASCII or malformed.
 */
function utf8Run(s: string, i: number, where: string): number {
  const bytes: number[] = [];
  let j = i;
  while (s.charCodeAt(j) === 0x25) {
    const hi = hexValue(s.charCodeAt(j + 1));
    const lo = hexValue(s.charCodeAt(j + 2));
    if (hi < 8 || lo < 0) break;
    bytes.push(hi * 16 + lo);
    j += 3;
  }
  if (bytes.length === 0) return i;
  try {
    utf8.decode(Uint8Array.from(bytes));
  } catch {
    bad(`percent-escapes in the ${where} are not valid UTF-8 (overlong, surrogate or truncated)`);
  }
  return j;
}

/** Canonicalises a raw origin-form request target (`req.url`). Throws PC_BAD_PATH. */
export function canonicalizeTarget(rawTarget: string): CanonicalTarget {
  if (rawTarget.length === 0 || rawTarget.charCodeAt(0) !== 0x2f) bad('the target must be a path starting with "/"');
  if (rawTarget.includes('#')) bad('a fragment ("#") is not allowed');
  const q = rawTarget.indexOf('?');
  const rawPath = q === -1 ? rawTarget : rawTarget.slice(0, q);
  const rawQuery = q === -1 ? '' : rawTarget.slice(q + 1);

  let path = '';
  let fast = true;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === 0x25) {
      fast = false;
      break;
    }
    if (c >= 128 || ALLOWED[c] === 0) {
      if (c === 0x3b) bad('";" path parameters are not allowed');
      if (c === 0x5c) bad('"\\" is not allowed');
      bad('control or non-ASCII characters must be percent-encoded');
    }
  }
  let nonAscii = false;
  if (fast) path = rawPath;
  else {
    for (let i = 0; i < rawPath.length; i++) {
      const c = rawPath.charCodeAt(i);
      if (c !== 0x25) {
        if (c >= 128 || ALLOWED[c] === 0) {
          if (c === 0x3b) bad('";" path parameters are not allowed');
          if (c === 0x5c) bad('"\\" is not allowed');
          bad('control or non-ASCII characters must be percent-encoded');
        }
        path += rawPath[i];
        continue;
      }
      const hi = hexValue(rawPath.charCodeAt(i + 1));
      const lo = hexValue(rawPath.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) bad('malformed percent-encoding');
      const b = hi * 16 + lo;
      if (b >= 0x80) {
        const end = utf8Run(rawPath, i, 'path');
        path += rawPath.slice(i, end).toUpperCase();
        nonAscii = true;
        i = end - 1;
        continue;
      }
      if (b === 0x2f || b === 0x5c) bad('encoded "/" or "\\" is not allowed');
      if (b === 0x25) bad('double percent-encoding ("%25") is not allowed');
      if (b === 0x3b) bad('encoded ";" is not allowed');
      if (b < 0x20 || b === 0x7f) bad('encoded control characters are not allowed');
      path += isUnreserved(b) ? String.fromCharCode(b) : `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
    }
  }
  if (nonAscii) {
    // Valid UTF-8 by now, and no %25: decoding cannot fail. NFKC-stable text is also NFC-stable.
    const text = decodeURIComponent(path);
    if (text.normalize('NFC') !== text) bad('percent-encoded text is not in Unicode normal form NFC');
    if (text.normalize('NFKC') !== text) bad('percent-encoded text changes under NFKC (fullwidth or compatibility characters, e.g. "\uFF0E" for ".")');
  }
  // Segment checks run on the decoded form, so "%2e%2e" is caught as "..".
  let start = 1;
  while (start <= path.length) {
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    const len = end - start;
    if (len === 0 && end !== path.length) bad('empty path segments ("//") are not allowed');
    if ((len === 1 && path.charCodeAt(start) === 0x2e) || (len === 2 && path.charCodeAt(start) === 0x2e && path.charCodeAt(start + 1) === 0x2e)) {
      bad('dot segments ("." or "..") are not allowed');
    }
    start = end + 1;
  }

  if (rawQuery.length === 0) return { path, query: [], search: '' };
  for (let i = rawQuery.indexOf('%'); i !== -1; i = rawQuery.indexOf('%', i + 1)) i = Math.max(i, utf8Run(rawQuery, i, 'query') - 1);
  const params = new URLSearchParams(rawQuery);
  const query: [string, string][] = [];
  for (const [k, v] of params) query.push([k, v]);
  // The form serialiser writes a space as "+" (and a plus as %2B): %20 reads as a space everywhere.
  const search = params.toString();
  return { path, query, search: search.includes('+') ? search.replace(/\+/g, '%20') : search };
}

/** Groups query pairs into the policy input shape `{name: [values...]}`. */
export function queryObject(query: CanonicalTarget['query']): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null);
  for (const [k, v] of query) {
    out[k] ??= [];
    out[k].push(v);
  }
  return out;
}

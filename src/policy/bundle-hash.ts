/**
 * How OPA hashes a bundle file for its signature (bundle/hash.go, bundle/verify.go in
 * open-policy-agent/opa). A file is hashed as its bytes, except the "structured" ones (base
 * name `data.json`, `data.yaml`, `.manifest`): those are parsed and hashed over a canonical
 * form, so whitespace and key order do not change the digest but every value does:
 *
 * - objects: `{`, then each key in byte order of its UTF-8, `:`, the value, `,` between, `}`;
 *   a repeated key keeps its last value (Go's map);
 * - arrays: `[`, the elements, `,` between, `]`;
 * - numbers: their literal exactly as written (OPA decodes with json.Number): `1.0`, `1e5`
 *   and `-0` are hashed as such, not as `1`, `100000`, `0`;
 * - strings (keys too): Go's json.Encoder with SetEscapeHTML(false): `\"`, `\\`, `\b`, `\f`,
 *   `\n`, `\r`, `\t`, other controls as `\u00XX` (lower-case hex), U+2028 and U+2029 as
 *   `\u2028`/`\u2029`, everything else as its UTF-8 (`<`, `&`, `/` and non-ASCII unescaped);
 *   an escaped lone surrogate decodes to U+FFFD, as in Go;
 * - `true`, `false`, `null` as such. A leading UTF-8 BOM is dropped before parsing.
 *
 * Refused here (BundleRefusedError `malformed`) where OPA would guess: bytes that are not
 * UTF-8 (Go replaces them with U+FFFD byte by byte, a TextDecoder by maximal subparts), text
 * that is not JSON (OPA would then try it as YAML), nesting deeper than 1000.
 */
import { createHash } from 'node:crypto';
import { TextDecoder } from 'node:util';
import { BundleRefusedError } from './bundle-refusal';

/** A parsed JSON value that keeps each number's literal. */
export type JsonNode =
  | { readonly kind: 'object'; readonly entries: Map<string, JsonNode> }
  | { readonly kind: 'array'; readonly items: JsonNode[] }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'number'; readonly literal: string }
  | { readonly kind: 'literal'; readonly literal: 'true' | 'false' | 'null' };

const MAX_DEPTH = 1000;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
/** A run of string characters that need no decoding. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters end the run (JSON refuses them raw)
const PLAIN = /[^"\\\u0000-\u001f]+/y;
/** A string Go's encoder writes as it is. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: Go escapes control characters, so they rule the fast path out
const VERBATIM = /^[^"\\\u0000-\u001f\u2028\u2029\ud800-\udfff]*$/;
const STRUCTURED = new Set(['data.json', 'data.yaml', '.manifest']);

/** Thrown by parseJson: where and what. */
export class JsonSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

/** True for the files OPA hashes over their canonical form (IsStructuredDoc, by base name). */
export function isStructuredFile(name: string): boolean {
  return STRUCTURED.has(name.slice(name.lastIndexOf('/') + 1));
}

/** Decodes UTF-8 strictly, dropping one leading BOM (as OPA's util.Unmarshal does). */
export function decodeUtf8(bytes: Uint8Array): string {
  const start = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  try {
    return utf8.decode(bytes.subarray(start));
  } catch {
    throw new JsonSyntaxError('not valid UTF-8');
  }
}

/** Parses RFC 8259 JSON as Go's decoder with UseNumber does (one value, nothing after it). */
export function parseJson(text: string): JsonNode {
  let at = 0;
  const fail = (what: string): never => {
    throw new JsonSyntaxError(`${what} at offset ${at}`);
  };
  const space = () => {
    for (;;) {
      const c = text.charCodeAt(at);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) at++;
      else return;
    }
  };
  const hex4 = (from: number): number => (/^[0-9a-fA-F]{4}$/.test(text.slice(from, from + 4)) ? parseInt(text.slice(from, from + 4), 16) : -1);
  const string = (): string => {
    at++; // the opening quote
    let out = '';
    for (;;) {
      const c = text.charCodeAt(at);
      if (Number.isNaN(c)) fail('unterminated string');
      if (c === 0x22) {
        at++;
        return out;
      }
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        PLAIN.lastIndex = at;
        PLAIN.test(text);
        out += text.slice(at, PLAIN.lastIndex);
        at = PLAIN.lastIndex;
        continue;
      }
      const e = text[at + 1];
      at += 2;
      if (e === '"' || e === '\\' || e === '/') out += e;
      else if (e === 'b') out += '\b';
      else if (e === 'f') out += '\f';
      else if (e === 'n') out += '\n';
      else if (e === 'r') out += '\r';
      else if (e === 't') out += '\t';
      else if (e === 'u') {
        const u = hex4(at);
        if (u < 0) fail('bad \\u escape');
        at += 4;
        if (u >= 0xd800 && u <= 0xdfff) {
          // Go: a surrogate pairs only with a following \u low surrogate; otherwise U+FFFD, and
          // the next escape is read on its own.
          const low = text.startsWith('\\u', at) ? hex4(at + 2) : -1;
          if (u <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
            out += String.fromCharCode(u, low);
            at += 6;
          } else out += '\ufffd';
        } else out += String.fromCharCode(u);
      } else fail('bad escape');
    }
  };
  const value = (depth: number): JsonNode => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    space();
    const c = text[at];
    if (c === '{') {
      at++;
      const entries = new Map<string, JsonNode>();
      space();
      if (text[at] === '}') {
        at++;
        return { kind: 'object', entries };
      }
      for (;;) {
        space();
        if (text[at] !== '"') fail('expected a key');
        const key = string();
        space();
        if (text[at] !== ':') fail("expected ':'");
        at++;
        entries.set(key, value(depth + 1)); // the last of repeated keys wins, as in a Go map
        space();
        if (text[at] === ',') at++;
        else if (text[at] === '}') {
          at++;
          return { kind: 'object', entries };
        } else fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      at++;
      const items: JsonNode[] = [];
      space();
      if (text[at] === ']') {
        at++;
        return { kind: 'array', items };
      }
      for (;;) {
        items.push(value(depth + 1));
        space();
        if (text[at] === ',') at++;
        else if (text[at] === ']') {
          at++;
          return { kind: 'array', items };
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return { kind: 'string', value: string() };
    const literal = c === 't' ? 'true' : c === 'f' ? 'false' : c === 'n' ? 'null' : null;
    if (literal !== null) {
      if (!text.startsWith(literal, at)) fail('unexpected character');
      at += literal.length;
      return { kind: 'literal', literal };
    }
    NUMBER.lastIndex = at;
    const m = NUMBER.exec(text);
    if (!m) return fail('unexpected character');
    at += m[0].length;
    return { kind: 'number', literal: m[0] };
  };
  const root = value(0);
  space();
  if (at !== text.length) fail('unexpected text after the value');
  return root;
}

const SHORT_ESCAPES: Record<number, string> = { 34: '\\"', 92: '\\\\', 8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t' };

/** A string as Go's json.Encoder writes it with SetEscapeHTML(false). */
export function goJsonString(s: string): string {
  if (VERBATIM.test(s)) return `"${s}"`;
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    const short = SHORT_ESCAPES[c];
    if (short) out += short;
    else if (c < 0x20) out += `\\u00${c.toString(16).padStart(2, '0')}`;
    else if (c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16)}`;
    else if (c >= 0xd800 && c <= 0xdfff)
      out += '\ufffd'; // cannot come from parseJson; Go writes U+FFFD
    else out += ch;
  }
  return `${out}"`;
}

/**
 * Go's byte order of UTF-8, which is code point order. JavaScript compares UTF-16 code units,
 * which agrees except where a surrogate pair (U+10000 and up) meets U+E000 to U+FFFF.
 */
function byUtf8(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i].codePointAt(0) as number) - (y[i].codePointAt(0) as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
const SURROGATE = /[\ud800-\udfff]/;

/** The canonical text OPA hashes for a parsed structured file. */
export function canonicalJson(node: JsonNode): string {
  switch (node.kind) {
    case 'object': {
      const keys = [...node.entries.keys()];
      // Without surrogates UTF-16 order is code point order, which is UTF-8 byte order.
      if (keys.some((k) => SURROGATE.test(k))) keys.sort(byUtf8);
      else keys.sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) out += `${i > 0 ? ',' : ''}${goJsonString(keys[i])}:${canonicalJson(node.entries.get(keys[i]) as JsonNode)}`;
      return `${out}}`;
    }
    case 'array': {
      let out = '[';
      for (let i = 0; i < node.items.length; i++) out += `${i > 0 ? ',' : ''}${canonicalJson(node.items[i])}`;
      return `${out}]`;
    }
    case 'string':
      return goJsonString(node.value);
    default:
      return node.literal;
  }
}

/** Node's name for each hash algorithm OPA may list (MD5 and SHA-1 are refused here). */
const HASHES: Record<string, string> = {
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
};

/**
 * The digest OPA compares with the signed one for bundle member `name` (no leading `/`).
 * Throws BundleRefusedError `malformed` for an algorithm not accepted or a structured file
 * that cannot be read as JSON.
 */
export function bundleFileDigest(name: string, bytes: Buffer, algorithm: string): Buffer {
  const hash = HASHES[algorithm];
  if (!hash) {
    const why = algorithm === 'MD5' || algorithm === 'SHA-1' ? 'is too weak and refused' : 'is not one OPA supports';
    throw new BundleRefusedError('malformed', `${name}: the signature hashes it with ${JSON.stringify(algorithm)}, which ${why}`, name);
  }
  if (!isStructuredFile(name)) return createHash(hash).update(bytes).digest();
  let canonical: string;
  try {
    canonical = canonicalJson(parseJson(decodeUtf8(bytes)));
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    const yaml = name.endsWith('.yaml') ? ' (YAML that is not JSON is not hashed here: put the data in data.json)' : '';
    throw new BundleRefusedError('malformed', `${name}: not JSON as OPA hashes it: ${err.message}${yaml}`, name);
  }
  return createHash(hash).update(canonical, 'utf8').digest();
}

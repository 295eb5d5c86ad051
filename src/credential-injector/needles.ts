/**
 * The forms in which a careless upstream commonly echoes a secret: the bytes themselves, and the
 * encodings frameworks apply when they put a value into a URL, a JSON string, a header or a blob.
 * Each form becomes a needle for the response masker, compiled once when a credential is bound.
 *
 * What is covered (docs/guarantees.md, G2): raw UTF-8; standard base64 and base64url at each of the
 * three byte alignments (a secret embedded in a larger base64 blob, such as `Basic` credentials or
 * a JWT, starts at byte offset 0, 1 or 2 of a 3-byte group); lower- and upper-case hex;
 * percent-encoding as `encodeURIComponent`, `encodeURI`, HTML forms (`+` for space, `%2B` for `+`)
 * and with lower-case hex digits; JSON string escaping as JavaScript, Go (`<`, `>`, `&` as
 * `\u003c`…), PHP (`\/`) and Python (`ensure_ascii`) write it; every character `\u`-escaped;
 * and each of these JSON-escaped once more, as a JSON document inside a JSON string (an MCP
 * tool's text result) carries it.
 * Compositions (base64 of hex, a secret split over fields) are what a deliberately malicious
 * upstream does; masking does not promise to defeat those.
 */

/** Needles shorter than this would mask unrelated bytes all over a response. */
export const MIN_NEEDLE_BYTES = 4;

/**
 * The characters of base64(prefix ‖ secret ‖ suffix) that depend on the secret's bytes alone,
 * for a secret starting `align` bytes into a 3-byte group.
 */
function base64Core(secret: Buffer, align: 0 | 1 | 2): string {
  const padded = Buffer.concat([Buffer.alloc(align), secret, Buffer.alloc(2)]);
  const first = Math.ceil((8 * align) / 6);
  const end = Math.floor((8 * (align + secret.length)) / 6);
  return padded.toString('base64').slice(first, end);
}

function toBase64Url(b64: string): string {
  return b64.replace(/\+/g, '-').replace(/\//g, '_');
}

function hex4(code: number, upper: boolean): string {
  const h = code.toString(16).padStart(4, '0');
  return upper ? h.toUpperCase() : h;
}

/** Escapes each UTF-16 code unit `test` selects as `\uXXXX`; the rest as JSON.stringify writes it. */
function jsonEscape(s: string, test: (code: number) => boolean, upper = false, slash = false): string {
  let out = '';
  for (const ch of JSON.stringify(s)
    .slice(1, -1)
    .split(/(\\u[0-9a-fA-F]{4}|\\.)/)) {
    if (ch.startsWith('\\')) {
      out += ch;
      continue;
    }
    for (let i = 0; i < ch.length; i++) {
      const code = ch.charCodeAt(i);
      if (slash && code === 0x2f) out += '\\/';
      else out += test(code) ? `\\u${hex4(code, upper)}` : ch[i];
    }
  }
  return out;
}

function lowerPercentHex(s: string): string {
  return s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
}

/** The base64 (alone, padding included, and inside a larger blob at each alignment), base64url and hex forms of some bytes. */
function addBinaryForms(bytes: Buffer, forms: Set<string>): void {
  const whole = bytes.toString('base64');
  forms.add(whole);
  forms.add(toBase64Url(whole));
  forms.add(toBase64Url(whole).replace(/=+$/, ''));
  for (const align of [0, 1, 2] as const) {
    const core = base64Core(bytes, align);
    forms.add(core);
    forms.add(toBase64Url(core));
  }
  const hex = bytes.toString('hex');
  forms.add(hex);
  forms.add(hex.toUpperCase());
}

/** Every distinct encoded form of one secret (the secret itself included). */
export function encodedForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = new Set<string>([secret]);
  addBinaryForms(bytes, forms);
  const component = encodeURIComponent(secret);
  forms.add(component);
  forms.add(lowerPercentHex(component));
  forms.add(component.replace(/%20/g, '+'));
  forms.add(encodeURI(secret));
  forms.add(new URLSearchParams({ v: secret }).toString().slice(2));
  forms.add(jsonEscape(secret, () => false));
  forms.add(jsonEscape(secret, (c) => c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029));
  forms.add(jsonEscape(secret, (c) => c > 0x7e, false, true));
  forms.add(jsonEscape(secret, (c) => c > 0x7e));
  let allLower = '';
  let allUpper = '';
  for (let i = 0; i < secret.length; i++) {
    allLower += `\\u${hex4(secret.charCodeAt(i), false)}`;
    allUpper += `\\u${hex4(secret.charCodeAt(i), true)}`;
  }
  forms.add(allLower);
  forms.add(allUpper);
  // A JSON document carried as a JSON string (an MCP tool's text result is often one): every
  // form escaped once more.
  for (const f of [...forms]) forms.add(JSON.stringify(f).slice(1, -1));
  return [...forms];
}

/**
 * The needles for a credential: every form of each secret (the secret itself included), and
 * the encoded forms only of each value that carries a secret (an attached header such as
 * `Bearer <token>`, whose raw form the secret's own needle already masks, leaving the scheme
 * readable). Encoded forms shorter than MIN_NEEDLE_BYTES are left out; duplicates are merged.
 * Overlapping needles are all kept: the masker fills the union of what they match, so an echoed
 * value is masked whole.
 */
export function compileNeedles(secrets: readonly string[], carriers: readonly string[] = []): Buffer[] {
  const all = new Set<string>();
  for (const s of secrets) if (s.length > 0) all.add(s);
  for (const s of [...secrets, ...carriers]) {
    if (s.length === 0) continue;
    for (const f of encodedForms(s)) if (f !== s && Buffer.byteLength(f) >= MIN_NEEDLE_BYTES) all.add(f);
  }
  return [...all].sort((a, b) => b.length - a.length).map((n) => Buffer.from(n, 'utf8'));
}

const LOWER_HEX = /^[0-9a-f]+$/;

/**
 * compileNeedles([s]) for a lower-case hex string (a SigV4 signature, one per call), without the
 * general transforms: every URL and JSON escape of hex digits is the string itself, and its
 * `\u` escapes are the same in either case. The same needles (test/unit/aws-sigv4.test.ts holds
 * it), at a fraction of the cost.
 */
export function hexStringNeedles(s: string): Buffer[] {
  if (!LOWER_HEX.test(s)) return compileNeedles([s]);
  const bytes = Buffer.from(s, 'latin1');
  const forms = new Set<string>([s]);
  addBinaryForms(bytes, forms);
  let escaped = '';
  for (let i = 0; i < s.length; i++) escaped += `\\u00${s.charCodeAt(i).toString(16)}`;
  forms.add(escaped);
  forms.add(escaped.replace(/\\/g, '\\\\'));
  const out: string[] = [];
  for (const f of forms) if (f === s || f.length >= MIN_NEEDLE_BYTES) out.push(f);
  return out.sort((a, b) => b.length - a.length).map((n) => Buffer.from(n, 'latin1'));
}

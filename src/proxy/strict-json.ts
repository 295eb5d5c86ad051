/**
 * Strict JSON for request bodies. JSON.parse keeps the last of duplicate keys while other
 * parsers keep the first, rounds integers above 2^53 and any literal with more digits than a
 * double holds (`100.00000000000000001` is 100 to the policy, not to a decimal-exact upstream),
 * accepts lone surrogates (`"\ud800"`) that other parsers refuse or replace, and a TextDecoder
 * drops a leading BOM that the upstream still receives: each lets a policy judge a value the
 * upstream never sees. This module decodes UTF-8 strictly (a BOM is refused), validates the
 * grammar, refuses duplicate keys (after unescaping), lone surrogates, numbers that do not
 * round-trip and nesting deeper than 128, then lets JSON.parse build the value.
 */
import { TextDecoder } from 'node:util';
import { GatewayError } from '../errors';

const MAX_DEPTH = 128;

// ignoreBOM keeps a BOM in the text, where the grammar refuses it (JSON has none: RFC 8259 §8.1).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes a JSON body (UTF-8, no BOM) and parses it strictly. Throws like parseStrictJson. */
export function parseJsonBody(body: Uint8Array): unknown {
  if (body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) {
    throw new GatewayError('PC_INVALID_JSON', 'invalid JSON body: it starts with a byte order mark (U+FEFF)');
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new GatewayError('PC_INVALID_JSON', 'invalid JSON body: not valid UTF-8');
  }
  return parseStrictJson(text);
}

/** A lone (unpaired) UTF-16 surrogate. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A decimal as (negative, significant digits without leading or trailing zeros, exponent). */
interface Decimal {
  readonly negative: boolean;
  readonly digits: string;
  readonly exponent: number;
}

const DECIMAL = /^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;

/** Reads a JSON number literal or a JS number's String() into its exact decimal value. */
function decimalOf(text: string): Decimal {
  const m = DECIMAL.exec(text)!;
  const all = m[2] + (m[3] ?? '');
  let start = 0;
  while (start < all.length && all.charCodeAt(start) === 0x30) start++;
  let end = all.length;
  while (end > start && all.charCodeAt(end - 1) === 0x30) end--;
  if (start === end) return { negative: false, digits: '', exponent: 0 };
  return { negative: m[1] === '-', digits: all.slice(start, end), exponent: Number(m[4] ?? 0) - (m[3]?.length ?? 0) + (all.length - end) };
}

/**
 * True when the literal's exact decimal value is the value of the double it parses to, written
 * shortest (what the policy is given, and what a decimal-exact parser reads). `0.1` does
 * (the policy sees 0.1), `100.00000000000000001` (100), `1e-400` (0) and
 * `4.9406564584124654e-324` (5e-324) do not.
 */
export function roundTrips(literal: string): boolean {
  const n = Number(literal);
  if (!Number.isFinite(n)) return false;
  const a = decimalOf(literal);
  const b = decimalOf(String(n).replace('e+', 'e'));
  return a.digits === b.digits && a.exponent === b.exponent && (a.digits === '' || a.negative === b.negative);
}

/** Parses JSON text strictly. Throws PC_INVALID_JSON, PC_DUPLICATE_JSON_KEY or PC_UNSAFE_JSON_NUMBER. */
export function parseStrictJson(text: string): unknown {
  new Scanner(text).document();
  return JSON.parse(text);
}

function invalid(why: string, at: number): never {
  throw new GatewayError('PC_INVALID_JSON', `invalid JSON body: ${why} at offset ${at}`);
}

class Scanner {
  private i = 0;
  /**
   * One key set per nesting depth, cleared and reused: an object's keys are only compared with
   * its siblings' until it closes, so a body of 100 000 small objects costs no 100 000 Sets.
   */
  private readonly keySets: Set<string>[] = [];
  constructor(private readonly s: string) {}

  document(): void {
    this.ws();
    this.value(0);
    this.ws();
    if (this.i !== this.s.length) invalid('unexpected trailing characters', this.i);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else break;
    }
  }

  private value(depth: number): void {
    const c = this.s.charCodeAt(this.i);
    if ((c === 0x7b || c === 0x5b) && depth >= MAX_DEPTH) invalid(`nesting deeper than ${MAX_DEPTH}`, this.i);
    if (c === 0x7b) return this.object(depth + 1);
    if (c === 0x5b) return this.array(depth + 1);
    if (c === 0x22) return void this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const lit of ['true', 'false', 'null']) {
      if (this.s.startsWith(lit, this.i)) {
        this.i += lit.length;
        return;
      }
    }
    invalid(this.i >= this.s.length ? 'unexpected end' : 'unexpected character', this.i);
  }

  private object(depth: number): void {
    this.i++;
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return;
    }
    this.keySets[depth] ??= new Set<string>();
    const keys = this.keySets[depth];
    keys.clear();
    for (;;) {
      if (this.s.charCodeAt(this.i) !== 0x22) invalid('expected a string key', this.i);
      const at = this.i;
      const key = this.string();
      if (keys.has(key)) {
        throw new GatewayError('PC_DUPLICATE_JSON_KEY', `JSON body repeats the key ${JSON.stringify(key)} at offset ${at}`);
      }
      keys.add(key);
      this.ws();
      if (this.s.charCodeAt(this.i) !== 0x3a) invalid('expected ":"', this.i);
      this.i++;
      this.ws();
      this.value(depth);
      if (!this.more(0x7d)) return;
    }
  }

  private array(depth: number): void {
    this.i++;
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return;
    }
    for (;;) {
      this.value(depth);
      if (!this.more(0x5d)) return;
    }
  }

  /** After a member: true on ",", false on the closing bracket, else invalid. */
  private more(close: number): boolean {
    this.ws();
    const c = this.s.charCodeAt(this.i);
    this.i++;
    if (c === 0x2c) {
      this.ws();
      return true;
    }
    if (c === close) return false;
    invalid(`expected "," or "${String.fromCharCode(close)}"`, this.i - 1);
  }

  /** Scans a string and returns its decoded value. */
  private string(): string {
    const s = this.s;
    const start = this.i;
    let escaped = false;
    this.i++;
    for (;;) {
      if (this.i >= s.length) invalid('unterminated string', start);
      const c = s.charCodeAt(this.i);
      if (c === 0x22) break;
      if (c < 0x20) invalid('control character in string', this.i);
      if (c === 0x5c) {
        escaped = true;
        const e = s.charCodeAt(this.i + 1);
        if (e === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(this.i + 2, this.i + 6))) invalid('bad \\u escape', this.i);
          this.i += 6;
          continue;
        }
        if ('"\\/bfnrt'.indexOf(String.fromCharCode(e)) === -1 || Number.isNaN(e)) invalid('bad escape', this.i);
        this.i += 2;
        continue;
      }
      this.i++;
    }
    this.i++;
    if (!escaped) return s.slice(start + 1, this.i - 1);
    // Text decoded strictly from UTF-8 has no lone surrogates; only a \u escape can make one.
    const value = JSON.parse(s.slice(start, this.i)) as string;
    if (LONE_SURROGATE.test(value)) invalid('a \\u escape is a lone surrogate', start);
    return value;
  }

  private number(): void {
    const m = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(this.s);
    if (!r || r[0] === '-') invalid('bad number', this.i);
    const lit = r[0];
    if (!r[2] && !r[3]) {
      // Integers: up to 15 digits are always safe; beyond, the range is ±(2^53-1), as before.
      if (r[1].length >= 16 && !Number.isSafeInteger(Number(lit))) {
        throw new GatewayError('PC_UNSAFE_JSON_NUMBER', `JSON body integer ${lit.slice(0, 40)} is outside the safe range ±(2^53-1)`);
      }
    } else if (!Number.isFinite(Number(lit))) {
      invalid('number out of range', this.i);
    } else if ((r[3] || lit.length - (lit.charCodeAt(0) === 0x2d ? 2 : 1) > 15) && !roundTrips(lit)) {
      // Without an exponent, 15 digits or fewer always round-trip (DBL_DIG); check the rest.
      throw new GatewayError(
        'PC_UNSAFE_JSON_NUMBER',
        `JSON body number ${lit.slice(0, 40)} is not exactly the double it parses to (${String(Number(lit))}); send at most 17 significant digits within the double range`,
      );
    }
    this.i += lit.length;
  }
}

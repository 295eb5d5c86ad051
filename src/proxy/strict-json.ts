/**
 * Strict JSON for request bodies. JSON.parse keeps the last of duplicate keys while other
 * parsers keep the first, and rounds integers above 2^53: either lets a policy judge a value the
 * upstream never sees. This scanner validates the grammar, refuses duplicate keys (after
 * unescaping), unsafe integers and nesting deeper than 128, then lets JSON.parse build the value.
 */
import { GatewayError } from '../errors';

const MAX_DEPTH = 128;

/** Parses a JSON body strictly. Throws PC_INVALID_JSON, PC_DUPLICATE_JSON_KEY or PC_UNSAFE_JSON_NUMBER. */
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
    const keys = (this.keySets[depth] ??= new Set<string>());
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
    const raw = s.slice(start + 1, this.i - 1);
    return escaped ? (JSON.parse(s.slice(start, this.i)) as string) : raw;
  }

  private number(): void {
    const m = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(this.s);
    if (!r || r[0] === '-') invalid('bad number', this.i);
    const lit = r[0];
    if (!r[2] && !r[3] && r[1].length >= 16 && !Number.isSafeInteger(Number(lit))) {
      throw new GatewayError('PC_UNSAFE_JSON_NUMBER', `JSON body integer ${lit.slice(0, 40)} is outside the safe range ±(2^53-1)`);
    }
    if (!Number.isFinite(Number(lit))) invalid('number out of range', this.i);
    this.i += lit.length;
  }
}

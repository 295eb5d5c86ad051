/**
 * Finds every occurrence of a fixed set of byte strings in one pass (Wu–Manber). A window the
 * length of the shortest needle slides over the text; a table indexed by the window's last two
 * bytes says how far it may jump without skipping an occurrence. In text that holds no needle the
 * window moves by nearly the shortest needle's length per step, so scanning costs a fraction of a
 * byte-at-a-time automaton (Aho–Corasick), which matters on the per-call path: the masker runs on
 * every response byte of a credentialed route. Tables are built once, when the credential is bound.
 */

/** Calls `hit(start, end)` for an occurrence of a needle at text[start, end). */
export type HitFn = (start: number, end: number) => void;

/** Something that finds a fixed set of needles in bytes (the masker holds one or more). */
export interface Matcher {
  /** Length of the longest needle. */
  readonly maxLength: number;
  /** Reports every occurrence (overlapping ones too) in text[0, length). */
  scan(text: Uint8Array, length: number, hit: HitFn): void;
  /**
   * Where the longest suffix of text[0, length) that is a proper prefix of some needle begins,
   * or `length` when there is none.
   */
  partialTail(text: Uint8Array, length: number): number;
}

/** A compiled needle set. */
export class MultiMatcher implements Matcher {
  /** Length of the longest needle. */
  readonly maxLength: number;
  readonly #m: number;
  readonly #block: 1 | 2;
  readonly #shift: Uint8Array;
  readonly #buckets = new Map<number, Uint8Array[]>();
  /** Needles by first byte, for the partial-match tail. */
  readonly #byFirst: (Uint8Array[] | undefined)[] = new Array(256);

  constructor(needles: readonly Uint8Array[]) {
    const list = needles.filter((n) => n.length > 0);
    if (list.length === 0) throw new TypeError('MultiMatcher needs at least one non-empty needle');
    this.maxLength = Math.max(...list.map((n) => n.length));
    const m = Math.min(255, ...list.map((n) => n.length));
    const block = m >= 4 ? 2 : 1;
    this.#m = m;
    this.#block = block;
    this.#shift = new Uint8Array(block === 2 ? 65536 : 256).fill(m - block + 1);
    for (const n of list) {
      for (let q = block; q <= m; q++) {
        const h = block === 2 ? (n[q - 2] << 8) | n[q - 1] : n[q - 1];
        const s = m - q;
        if (s < this.#shift[h]) this.#shift[h] = s;
        if (s === 0) {
          const b = this.#buckets.get(h);
          if (b) b.push(n);
          else this.#buckets.set(h, [n]);
        }
      }
      const first = this.#byFirst[n[0]];
      if (first) first.push(n);
      else this.#byFirst[n[0]] = [n];
    }
  }

  /** Reports every occurrence (overlapping ones too) in text[0, length). */
  scan(text: Uint8Array, length: number, hit: HitFn): void {
    const m = this.#m;
    const shift = this.#shift;
    const two = this.#block === 2;
    let pos = m - 1;
    while (pos < length) {
      const h = two ? (text[pos - 1] << 8) | text[pos] : text[pos];
      const s = shift[h];
      if (s !== 0) {
        pos += s;
        continue;
      }
      const start = pos - m + 1;
      for (const n of this.#buckets.get(h)!) {
        if (start + n.length <= length && equalAt(text, start, n, n.length)) hit(start, start + n.length);
      }
      pos++;
    }
  }

  /**
   * Where the longest suffix of text[0, length) that is a proper prefix of some needle begins,
   * or `length` when there is none: the bytes a stream must hold back until the next chunk says
   * whether they start a needle.
   */
  partialTail(text: Uint8Array, length: number): number {
    const byFirst = this.#byFirst;
    for (let j = Math.max(0, length - this.maxLength + 1); j < length; j++) {
      const candidates = byFirst[text[j]];
      if (candidates === undefined) continue;
      const rest = length - j;
      for (const n of candidates) if (n.length > rest && equalAt(text, j, n, rest)) return j;
    }
    return length;
  }
}

/**
 * A handful of needles searched one by one with Buffer#indexOf: nothing to build, so it suits
 * needles that live for one call (a SigV4 signature's forms). Each needle is a pass over the
 * text, so it is for a few needles only; the masker uses MultiMatcher for a credential's set.
 */
export class FewNeedles implements Matcher {
  readonly maxLength: number;
  readonly #needles: readonly Buffer[];

  constructor(needles: readonly Buffer[]) {
    this.#needles = needles.filter((n) => n.length > 0);
    if (this.#needles.length === 0) throw new TypeError('FewNeedles needs at least one non-empty needle');
    this.maxLength = Math.max(...this.#needles.map((n) => n.length));
  }

  scan(text: Uint8Array, length: number, hit: HitFn): void {
    const view = Buffer.from(text.buffer, text.byteOffset, length);
    for (const n of this.#needles) {
      for (let at = view.indexOf(n); at !== -1; at = view.indexOf(n, at + 1)) hit(at, at + n.length);
    }
  }

  partialTail(text: Uint8Array, length: number): number {
    for (let j = Math.max(0, length - this.maxLength + 1); j < length; j++) {
      const rest = length - j;
      for (const n of this.#needles) if (n.length > rest && n[0] === text[j] && equalAt(text, j, n, rest)) return j;
    }
    return length;
  }
}

function equalAt(text: Uint8Array, start: number, needle: Uint8Array, len: number): boolean {
  for (let i = 0; i < len; i++) if (text[start + i] !== needle[i]) return false;
  return true;
}

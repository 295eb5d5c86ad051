/**
 * Masks credential values in upstream responses, so an upstream that echoes a secret (a debug
 * endpoint, an error page, a redirect that carries it in a query) cannot hand it to the agent.
 * Every form in needles.ts is searched in one pass (multi-matcher.ts); each occurrence is
 * overwritten with `*` of the same length, which keeps Content-Length valid. Header names that
 * hold a secret are reported so the caller drops them. In streams, only a tail that could be the
 * start of a secret is held back, so events are not delayed; SSE streams are also scanned as the
 * joined payload of their `data:` lines (sse-data.ts), which catches a secret sent piecewise.
 */
import { inspect } from 'node:util';
import { Transform, type TransformCallback } from 'node:stream';
import { FewNeedles, type Matcher, MultiMatcher } from './multi-matcher';
import { compileNeedles } from './needles';
import { SseDataTracker } from './sse-data';

const STAR = 0x2a;

/** At most this many needles added over other maskers are searched one by one (FewNeedles). */
const FEW_NEEDLES = 32;

/** Most bytes a stream may hold back waiting to see whether they complete a secret. */
export const MAX_HELD_BYTES = 1024 * 1024;

/** A stream held back more than MAX_HELD_BYTES: it is cut off rather than passed on unmasked. */
export class MaskHoldError extends Error {
  readonly code = 'mask_hold_overflow';
  constructor() {
    super(`the response held more than ${MAX_HELD_BYTES} bytes that might complete a secret`);
    this.name = 'MaskHoldError';
  }
}

const DATA_FIELD = Buffer.from('data:');

/**
 * How many lines of a whole event stream are `data:` lines, counting to 2. A line starts the
 * body or follows CR or LF, and its field name is what precedes its first colon; a "data:"
 * anywhere else sits inside some line's value (a value holds no CR or LF). A line `data` with
 * no colon has an empty value and adds no payload byte.
 */
export function dataLines(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(DATA_FIELD); i !== -1; i = buf.indexOf(DATA_FIELD, i + 1)) {
    if (i === 0 || buf[i - 1] === 0x0a || buf[i - 1] === 0x0d) if (++n > 1) return n;
  }
  return n;
}

/** Masks a fixed set of secret strings in all their encoded forms. */
export class ResponseMasker {
  // Private fields: invisible to JSON.stringify and util.inspect.
  /**
   * What searches the bytes: one matcher over a credential's needles, and for a masker built
   * over others (`also`, `union`) their matchers as compiled plus one for the new needles. Every
   * matcher reads the same original bytes before anything is filled, so overlapping needles are
   * masked whole, as with one matcher.
   */
  readonly #matchers: readonly Matcher[];
  /** Every needle searched for (possibly repeated), for a masker built over this one and for header names. */
  readonly #needles: readonly Buffer[];
  /** Lower-cased needles for header names (which arrive lower-cased), made at the first name long enough to hold one. */
  #lowerNeedles: readonly string[] | null = null;
  /** needleCount, counted at the first read (a per-call masker is rarely asked). */
  #needleCount: number | undefined;
  /** Bytes of the shortest needle: a shorter string cannot hold one (header values mostly are). */
  readonly #shortest: number;

  /**
   * `secrets` are masked in every form; `carriers` (values that hold a secret, like an attached
   * header) in their encoded forms; `also`: other maskers, whose matchers are reused as they are
   * (a per-call masker over a credential's fixed one: aws-sigv4.ts; a route's union);
   * `compiled`: needles already compiled for `secrets` (needles.ts hexStringNeedles), used instead.
   */
  constructor(
    secrets: readonly string[],
    carriers: readonly string[] = [],
    also: ResponseMasker | readonly ResponseMasker[] | null = null,
    compiled: readonly Buffer[] | null = null,
  ) {
    const others = also === null ? [] : also instanceof ResponseMasker ? [also] : also;
    const own = compiled ?? compileNeedles(secrets, carriers);
    // A per-call masker adds a few needles to compiled ones: they are searched with indexOf
    // rather than compiling one Wu–Manber table over all of them again, which cost 60–85 µs a
    // call (issue 12's SigV4 profile, docs/benchmarks.md).
    const mine: Matcher[] = own.length === 0 ? [] : others.length > 0 && own.length <= FEW_NEEDLES ? [new FewNeedles(own)] : [new MultiMatcher(own)];
    this.#matchers = others.length === 0 ? mine : [...new Set([...others.flatMap((m) => m.#matchers), ...mine])];
    this.#needles = others.length === 0 ? own : [...others.flatMap((m) => m.#needles), ...own];
    this.#shortest = this.#needles.length ? Math.min(...this.#needles.map((n) => n.length)) : Infinity;
  }

  /** One masker over the needles of several: their matchers, reused as compiled. */
  static union(maskers: readonly ResponseMasker[]): ResponseMasker {
    return new ResponseMasker([], [], maskers, []);
  }

  /** How many distinct needles it searches for (for benchmarks and tests; not secret). */
  get needleCount(): number {
    this.#needleCount ??= new Set(this.#needles.map((n) => n.toString('latin1'))).size;
    return this.#needleCount;
  }

  toJSON(): string {
    return '[ResponseMasker]';
  }

  [inspect.custom](): string {
    return '[ResponseMasker]';
  }

  /** Masks every needle in buf[0, length) in place; returns true if anything was masked. */
  maskBuffer(buf: Uint8Array, length = buf.length): boolean {
    if (this.#matchers.length === 0 || length === 0) return false;
    let hits: number[] | null = null;
    const hit = (s: number, e: number) => {
      hits ??= [];
      hits.push(s, e);
    };
    for (const matcher of this.#matchers) matcher.scan(buf, length, hit);
    if (hits === null) return false;
    // Filled after the scan, so overlapping occurrences are all found first.
    const h: number[] = hits;
    for (let i = 0; i < h.length; i += 2) buf.fill(STAR, h[i], h[i + 1]);
    return true;
  }

  /**
   * Masks a whole body in place: the bytes, and for an event stream the joined `data:` payload.
   * Returns true if anything was masked.
   */
  maskBody(buf: Buffer, sse: boolean): boolean {
    const raw = this.maskBuffer(buf);
    // One data line (an MCP tools/call answer: one event, one line) is a contiguous run of the
    // raw bytes, scanned above: the joined view adds nothing. Building that view was 23 µs of
    // the 25 µs this method took per 1 KB tools/call answer under the profiler
    // (docs/benchmarks.md, "MCP call cost — 2026-12-04").
    if (!sse || dataLines(buf) <= 1) return raw;
    return this.#maskSseData(buf, 0, buf.length, new SseDataTracker()) || raw;
  }

  /** Masks a header value (read as latin1, as undici decodes them). */
  maskString(value: string): string {
    // A latin1 string has one byte per character: shorter than every needle, it holds none.
    if (value.length < this.#shortest) return value;
    const buf = Buffer.from(value, 'latin1');
    return this.maskBuffer(buf) ? buf.toString('latin1') : value;
  }

  /** True when a (lower-cased) header name contains a secret in any case. */
  nameHasSecret(name: string): boolean {
    if (name.length < this.#shortest) return false;
    this.#lowerNeedles ??= [...new Set(this.#needles.map((n) => n.toString('latin1').toLowerCase()))];
    const lower = name.toLowerCase();
    for (const n of this.#lowerNeedles) if (lower.includes(n)) return true;
    return false;
  }

  /** Scans the data payload of raw[from, to) (tracker state carried in) and masks what maps back. */
  #maskSseData(raw: Uint8Array, from: number, to: number, tracker: SseDataTracker): boolean {
    const view = tracker.feed(raw, from, to);
    let hit = false;
    const fill = (s: number, e: number) => {
      hit = true;
      for (let i = s; i < e; i++) raw[from + view.offsets[i]] = STAR;
    };
    // Fills land in `raw`, not in the payload view the matchers read.
    for (const matcher of this.#matchers) matcher.scan(view.bytes, view.length, fill);
    return hit;
  }

  /**
   * A transform that masks across chunk boundaries (and, for `sse`, across `data:` lines and
   * events). It holds back only bytes that may begin a secret; it errors with MaskHoldError
   * rather than hold more than MAX_HELD_BYTES.
   */
  stream(options: { readonly sse: boolean } = { sse: false }, onMasked?: () => void): Transform {
    const matchers = this.#matchers;
    if (matchers.length === 0) return new Transform({ transform: (c, _e, done) => done(null, c) });
    const partialTail = (text: Uint8Array, length: number) => {
      let tail = length;
      for (const matcher of matchers) tail = Math.min(tail, matcher.partialTail(text, length));
      return tail;
    };
    const tracker = options.sse ? new SseDataTracker() : null;
    /** Raw bytes not yet sent. */
    let pending: Buffer | null = null;
    /** Payload bytes (and their offsets in `pending`) that may begin a secret. */
    let heldData: Uint8Array = new Uint8Array(0);
    let heldOffsets: Int32Array = new Int32Array(0);
    const self = this;
    return new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
        const oldLength = pending ? pending.length : 0;
        const buf: Buffer = pending ? Buffer.concat([pending, chunk]) : chunk;
        pending = null;
        let masked = self.maskBuffer(buf);
        let cut = partialTail(buf, buf.length);
        if (tracker) {
          const fresh = tracker.feed(buf, oldLength, buf.length);
          // The held payload continues with this chunk's payload: scan them as one sequence.
          const n = heldData.length + fresh.length;
          const data = new Uint8Array(n);
          const offsets = new Int32Array(n);
          data.set(heldData, 0);
          offsets.set(heldOffsets, 0);
          for (let i = 0; i < fresh.length; i++) {
            data[heldData.length + i] = fresh.bytes[i];
            offsets[heldData.length + i] = fresh.offsets[i] + oldLength;
          }
          const fill = (s: number, e: number) => {
            masked = true;
            for (let i = s; i < e; i++) buf[offsets[i]] = STAR;
          };
          for (const matcher of matchers) matcher.scan(data, n, fill);
          const tail = partialTail(data, n);
          if (tail < n && offsets[tail] < cut) cut = offsets[tail];
          heldData = data.subarray(tail);
          heldOffsets = offsets.subarray(tail).map((o) => o - cut);
        }
        if (masked) onMasked?.();
        if (buf.length - cut > MAX_HELD_BYTES) return done(new MaskHoldError());
        if (cut < buf.length) pending = Buffer.from(buf.subarray(cut));
        done(null, cut > 0 ? buf.subarray(0, cut) : undefined);
      },
      flush(done: TransformCallback) {
        done(null, pending ?? undefined);
      },
    });
  }
}

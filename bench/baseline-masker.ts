/**
 * THE PREVIOUS MASKER, kept only as the benchmark's baseline (bench/masking.ts): exact bytes of
 * each secret, one Buffer.indexOf per needle. Not used by the gateway.
 *
 * Masks credential values in upstream responses, so an upstream that echoes the secret (a debug
 * endpoint, an error page) cannot hand it to the agent. Each occurrence is overwritten with `*`
 * of the same length, which keeps Content-Length valid. In streams, only a tail that could be
 * the start of a secret is held back, so SSE events are not delayed.
 */
import { inspect } from 'node:util';
import { Transform, type TransformCallback } from 'node:stream';

const STAR = 0x2a;

/** Masks a fixed set of secret strings. */
export class BaselineMasker {
  // Private fields: invisible to JSON.stringify and util.inspect.
  readonly #needles: readonly Buffer[];
  readonly #strings: readonly string[];

  constructor(secrets: readonly string[]) {
    this.#strings = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
    this.#needles = this.#strings.map((s) => Buffer.from(s, 'utf8'));
  }

  toJSON(): string {
    return '[ResponseMasker]';
  }

  [inspect.custom](): string {
    return '[ResponseMasker]';
  }

  /** Masks in place; returns true if anything was masked. */
  maskBuffer(buf: Buffer): boolean {
    let hit = false;
    for (const n of this.#needles) {
      let i = buf.indexOf(n);
      while (i !== -1) {
        buf.fill(STAR, i, i + n.length);
        hit = true;
        i = buf.indexOf(n, i + n.length);
      }
    }
    return hit;
  }

  /** Masks a header value. */
  maskString(value: string): string {
    let out = value;
    for (const s of this.#strings) if (out.includes(s)) out = out.split(s).join('*'.repeat(Buffer.byteLength(s)));
    return out;
  }

  /** Length of the longest suffix of buf that is a proper prefix of a secret. */
  private heldTail(buf: Buffer): number {
    let keep = 0;
    for (const n of this.#needles) {
      const max = Math.min(n.length - 1, buf.length);
      for (let len = max; len > keep; len--) {
        if (buf.compare(n, 0, len, buf.length - len, buf.length) === 0) {
          keep = len;
          break;
        }
      }
    }
    return keep;
  }

  /** A transform stream that masks across chunk boundaries. */
  stream(onMasked?: () => void): Transform {
    let carry: Buffer | null = null;
    const self = this;
    return new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
        const buf = carry ? Buffer.concat([carry, chunk]) : chunk;
        carry = null;
        if (self.maskBuffer(buf)) onMasked?.();
        const keep = self.heldTail(buf);
        if (keep > 0) carry = buf.subarray(buf.length - keep);
        done(null, keep > 0 ? buf.subarray(0, buf.length - keep) : buf);
      },
      flush(done: TransformCallback) {
        done(null, carry ?? undefined);
      },
    });
  }
}

/**
 * Decompresses an upstream body so the masker and the list filter read what the agent would
 * read, with limits so a compression bomb cannot make the gateway spend unbounded CPU: at most
 * MAX_DECODED_BYTES out, and past the first MiB at most MAX_RATIO times what came in. A body
 * past either limit, or one that does not decode, errors the stream (the answer is cut off,
 * never passed on undecoded). `deflate` is read as zlib-wrapped or raw, as browsers do.
 */
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

export const MAX_DECODED_BYTES = 256 * 1024 * 1024;
export const MAX_RATIO = 200;
const RATIO_FROM = 1024 * 1024;

/** Why a decoder cut its stream (an outcome code; never on the wire). */
export class DecodeError extends Error {
  readonly code: 'upstream_decode_limit' | 'upstream_decode_error';
  constructor(code: DecodeError['code'], message: string) {
    super(message);
    this.name = 'DecodeError';
    this.code = code;
  }
}

function decompressor(coding: string, first: Buffer): Transform {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'br':
      return zlib.createBrotliDecompress();
    case 'zstd':
      return zlib.createZstdDecompress();
    default: {
      // RFC 9110 says zlib format; some servers send raw deflate. A zlib header is CM=8 and a
      // 16-bit value divisible by 31.
      const zlibWrapped = first.length >= 2 && (first[0] & 0x0f) === 8 && ((first[0] << 8) | first[1]) % 31 === 0;
      return zlibWrapped ? zlib.createInflate() : zlib.createInflateRaw();
    }
  }
}

/** A transform that decodes one content coding within the limits. */
export class BoundedDecoder extends Transform {
  readonly #coding: string;
  #inner: Transform | null = null;
  #in = 0;
  #out = 0;

  constructor(coding: string) {
    super();
    this.#coding = coding;
  }

  #start(first: Buffer): Transform {
    const inner = decompressor(this.#coding, first);
    inner.on('data', (chunk: Buffer) => {
      this.#out += chunk.length;
      if (this.#out > MAX_DECODED_BYTES || (this.#out > RATIO_FROM && this.#out > this.#in * MAX_RATIO)) {
        this.destroy(new DecodeError('upstream_decode_limit', "the upstream answer decompresses beyond the gateway's limits"));
        return;
      }
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('error', () => this.destroy(new DecodeError('upstream_decode_error', 'the upstream answer does not decompress')));
    this.#inner = inner;
    return inner;
  }

  override _read(size: number): void {
    this.#inner?.resume();
    super._read(size);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#in += chunk.length;
    const inner = this.#inner ?? this.#start(chunk);
    inner.write(chunk, () => done());
  }

  override _flush(done: TransformCallback): void {
    const inner = this.#inner;
    if (inner === null) return done(); // an empty body
    inner.once('end', () => done());
    inner.end();
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    this.#inner?.destroy();
    done(err);
  }
}

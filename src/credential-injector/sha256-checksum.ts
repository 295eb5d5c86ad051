/**
 * The SHA-256 (and HMAC-SHA256) constructor `@smithy/signature-v4` is given: the same digests as
 * `@smithy/hash-node`'s Hash, but a plain hash is taken in one shot (`crypto.hash`) when it is
 * read, instead of through a Hash object made for it. Each signature takes two plain hashes (the
 * body's and the canonical request's); issue 12's SigV4 profile (docs/benchmarks.md) found hash
 * objects the largest part of sign()'s 76 µs.
 */
import { createHmac, type Hmac, hash } from 'node:crypto';

/** What the signer hands a checksum (smithy's SourceData). */
type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytesOf(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** A smithy Checksum over SHA-256; with `secret`, HMAC-SHA256 keyed by it (an Hmac made at once, as smithy's Hash does). */
export class Sha256Checksum {
  private chunks: Buffer[] = [];
  private mac: Hmac | null;

  constructor(private readonly secret?: SourceData) {
    this.mac = secret === undefined ? null : createHmac('sha256', bytesOf(secret));
  }

  update(data: SourceData): void {
    if (this.mac !== null) this.mac.update(bytesOf(data));
    else this.chunks.push(bytesOf(data));
  }

  digest(): Promise<Uint8Array> {
    if (this.mac !== null) return Promise.resolve(this.mac.digest());
    const chunks = this.chunks;
    return Promise.resolve(hash('sha256', chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), 'buffer'));
  }

  reset(): void {
    this.chunks = [];
    this.mac = this.secret === undefined ? null : createHmac('sha256', bytesOf(this.secret));
  }
}

/**
 * RFC 6962 Merkle tree hashing over audit lines: leaf = SHA-256(0x00 ‖ line), node =
 * SHA-256(0x01 ‖ left ‖ right). The tree over records 1..n is what a checkpoint signs, so
 * inclusion and consistency proofs in the transparency-log sense are possible.
 *
 * `MerkleFrontier` keeps only the roots of the perfect subtrees that make up the tree so far (at
 * most 64 hashes), so appending is O(log n) and the root is available at any size.
 */
import { createHash, hash } from 'node:crypto';

const LEAF = Buffer.from([0]);

/** RFC 6962 leaf hash of one record line (its exact bytes, without the newline). */
export function leafHash(line: string | Buffer): Buffer {
  // One-shot hash(): a Hash object per record cost 2–3% of the gateway's busy time in the
  // issue 13 profile (docs/benchmarks.md); U+0000 is the single byte 0x00 in UTF-8.
  return typeof line === 'string' ? hash('sha256', `\0${line}`, 'buffer') : hash('sha256', Buffer.concat([LEAF, line]), 'buffer');
}

/**
 * RFC 6962 leaf hash of a line already framed as `0x00 ‖ line` (the writer encodes each line
 * once, with the prefix in front, and hashes views of that one buffer).
 */
export function leafHashOfFramed(prefixed: Buffer): Buffer {
  return hash('sha256', prefixed, 'buffer');
}

/** RFC 6962 interior node hash. */
export function nodeHash(left: Buffer, right: Buffer): Buffer {
  const bytes = Buffer.allocUnsafe(1 + left.length + right.length);
  bytes[0] = 1;
  left.copy(bytes, 1);
  right.copy(bytes, 1 + left.length);
  return hash('sha256', bytes, 'buffer');
}

/** The root of the empty tree: SHA-256 of nothing. */
export const EMPTY_ROOT = createHash('sha256').digest();

/** Incremental Merkle tree: append leaves, read the root at the current size. */
export class MerkleFrontier {
  /** Perfect-subtree roots, largest (leftmost) first; sizes are the set bits of `size`. */
  private readonly stack: Buffer[];
  private count: number;

  constructor(stack: Buffer[] = [], size = 0) {
    this.stack = stack;
    this.count = size;
  }

  /** Number of leaves. */
  get size(): number {
    return this.count;
  }

  /** Appends a leaf hash. */
  push(leaf: Buffer): void {
    let hash = leaf;
    // Merging equal-sized subtrees follows the binary carry of the leaf count.
    for (let n = this.count; n & 1; n >>= 1) hash = nodeHash(this.stack.pop() as Buffer, hash);
    this.stack.push(hash);
    this.count++;
  }

  /** The RFC 6962 root of the leaves so far. */
  root(): Buffer {
    if (this.stack.length === 0) return EMPTY_ROOT;
    let hash = this.stack[this.stack.length - 1];
    for (let i = this.stack.length - 2; i >= 0; i--) hash = nodeHash(this.stack[i], hash);
    return hash;
  }

  /** The perfect-subtree roots, largest first: with `size`, everything needed to continue. */
  hashes(): Buffer[] {
    return this.stack.slice();
  }

  /**
   * A frontier resumed from saved hashes. Throws when their number does not fit `size` (one hash
   * per set bit of the leaf count).
   */
  static resume(hashes: Buffer[], size: number): MerkleFrontier {
    let bits = 0;
    for (let n = size; n > 0; n = Math.floor(n / 2)) bits += n % 2;
    if (bits !== hashes.length || hashes.some((h) => h.length !== 32))
      throw new Error(`a Merkle frontier of ${hashes.length} hashes cannot describe ${size} leaves`);
    return new MerkleFrontier(hashes.slice(), size);
  }

  /** An independent copy (the writer keeps one at the last durable record). */
  clone(): MerkleFrontier {
    return new MerkleFrontier(this.stack.slice(), this.count);
  }
}

/**
 * The last bundle put in force, kept on disk so that a gateway restarted while its bundle
 * service is down or failing still starts with the policy it last enforced (OPA's
 * `persist: true`). Two files in the persist directory: `bundle.tar.gz`, the bytes as served,
 * and `bundle.json`, `{version, etag, sha256, size, persisted_at}`. Each is replaced durably
 * (temporary file, fsync, rename, fsync of the directory: src/audit/durable-file.ts), the
 * bundle first, so a reader finds whole files; a crash between the two renames leaves a bundle
 * whose digest `bundle.json` does not name.
 *
 * Reading back trusts neither file alone: the bundle's size and SHA-256 must be the ones
 * `bundle.json` names, otherwise the pair is refused as torn (a write cut short, a disk that
 * lost a rename, someone's hand edit) and the caller says so instead of loading half a policy.
 * A persisted bundle is a candidate like any download: the store verifies it again.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { replaceFileDurably } from '../audit/durable-file';

/** The bundle's file in the persist directory (OPA's name for it). */
export const PERSISTED_BUNDLE_FILE = 'bundle.tar.gz';
/** Its metadata: the ETag it was served with and its digest. */
export const PERSISTED_META_FILE = 'bundle.json';

/** A bundle read back from the persist directory, its digest checked. */
export interface PersistedBundle {
  readonly bytes: Buffer;
  /** The ETag the server sent with it, or null when it sent none. */
  readonly etag: string | null;
  /** Hex SHA-256 of `bytes`. */
  readonly sha256: string;
}

/** Why a persisted bundle was not usable; the message names the directory and the fault. */
export class PersistedBundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PersistedBundleError';
  }
}

/** Hex SHA-256. */
export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * An ETag as it may be sent back in If-None-Match: visible ASCII and spaces, at most 1 KiB
 * (RFC 9110 §8.8.3 allows less; this refuses only what could not travel in a header).
 */
export function usableEtag(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 && value.length <= 1024 && /^[\x20-\x7e]+$/.test(value) ? value : null;
}

/** Persists `bytes` as the last bundle put in force; returns its SHA-256. */
export async function writePersistedBundle(dir: string, bytes: Buffer, etag: string | null): Promise<string> {
  const sha256 = sha256Hex(bytes);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await replaceFileDurably(path.join(dir, PERSISTED_BUNDLE_FILE), bytes, 0o600);
  const meta = { version: 1, etag: usableEtag(etag), sha256, size: bytes.length, persisted_at: new Date().toISOString() };
  await replaceFileDurably(path.join(dir, PERSISTED_META_FILE), `${JSON.stringify(meta)}\n`, 0o600);
  return sha256;
}

async function readOrNull(file: string): Promise<Buffer | null> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PersistedBundleError(`${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * The persisted bundle, or null when the directory holds none. Throws PersistedBundleError when
 * the files are there but do not agree (torn, partial, edited) or cannot be read.
 */
export async function readPersistedBundle(dir: string): Promise<PersistedBundle | null> {
  const bundleFile = path.join(dir, PERSISTED_BUNDLE_FILE);
  const metaFile = path.join(dir, PERSISTED_META_FILE);
  const [metaText, bytes] = [await readOrNull(metaFile), await readOrNull(bundleFile)];
  if (metaText === null && bytes === null) return null;
  if (metaText === null) throw new PersistedBundleError(`${bundleFile} has no ${PERSISTED_META_FILE} beside it (a write cut short?); it is ignored`);
  if (bytes === null) throw new PersistedBundleError(`${metaFile} names a bundle but ${bundleFile} is missing; it is ignored`);
  let meta: { sha256?: unknown; size?: unknown; etag?: unknown };
  try {
    meta = JSON.parse(metaText.toString('utf8')) ?? {};
  } catch {
    throw new PersistedBundleError(`${metaFile} is not JSON (a torn write?); the persisted bundle is ignored`);
  }
  if (typeof meta.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(meta.sha256))
    throw new PersistedBundleError(`${metaFile} names no sha256; the persisted bundle is ignored`);
  const sha256 = sha256Hex(bytes);
  if (meta.size !== bytes.length || meta.sha256 !== sha256)
    throw new PersistedBundleError(
      `${bundleFile} (${bytes.length} bytes, sha256 ${sha256}) is not the bundle ${metaFile} names (${String(meta.size)} bytes, sha256 ${meta.sha256}): a torn or partial write; it is ignored`,
    );
  return { bytes, etag: usableEtag(meta.etag), sha256 };
}

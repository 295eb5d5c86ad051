/**
 * A bundle's bytes to a compilable policy, in the one order every bundle goes through
 * (docs/policy-lifecycle.md): unpack, verify the signature (when signing is configured), read
 * the manifest, check the serial against the highest accepted before (anti-rollback), then take
 * its `policy.wasm` or compile its Rego with the pinned OPA. Used for a bundle file and for a
 * bundle service's downloads alike; nothing here knows where the bytes came from.
 *
 * Only the members verified are used: a Rego bundle is written out from the verified map and
 * compiled from there, never from the original archive.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { PolicyBuildError } from '../errors';
import { type BundleContents, readBundleFiles, untar } from './bundle';
import { checkSerial, parseManifest, type SerialFloor, type SerialOrder } from './bundle-manifest';
import { BundleRefusedError } from './bundle-refusal';
import { unpackSignedBundle, type VerifiedBundle } from './bundle-signature';

/** What the trail says of a bundle put in force (policy_loaded). */
export interface BundleFacts {
  /** Hex SHA-256 of the bundle's bytes. */
  readonly sha256: string;
  /** The manifest's `revision`, or null. */
  readonly manifestRevision: string | null;
  /** The manifest's `metadata.serial`, or null. */
  readonly serial: number | null;
  readonly order: SerialOrder;
  /** The key id that verified the signature; null when signing is not configured. */
  readonly signedBy: string | null;
  readonly scope: string | null;
}

/** Options of loadBundle. */
export interface LoadBundleOptions {
  /** Where the bytes came from, for messages (a file, a URL). */
  readonly source: string;
  readonly entrypoint: string;
  /** The configured verifier (bundle-signature.ts); null: signatures are not checked. */
  readonly verify: ((files: ReadonlyMap<string, Buffer>) => Promise<VerifiedBundle>) | null;
  readonly floor: SerialFloor | null;
  /** Compiles a directory holding a Rego bundle's members (bundle.ts, `opa build -b`). */
  compileRego(dir: string): Promise<BundleContents>;
}

/** A loaded bundle: what to run, its revision for the records, and its facts. */
export interface LoadedBundle {
  readonly contents: BundleContents;
  /** The manifest's revision when the signature covers it; otherwise `sha256:` of the bytes. */
  readonly revision: string;
  readonly facts: BundleFacts;
}

/** A member name safe to write under a directory: relative, no `.` or `..` segment. */
const SAFE_MEMBER = /^\/(?!.*(?:^|\/)\.{1,2}(?:\/|$))[^\0]+$/;

/** Unpacks, verifies, orders and compiles a bundle. Throws BundleRefusedError or PolicyBuildError. */
export async function loadBundle(bytes: Buffer, options: LoadBundleOptions): Promise<LoadedBundle> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  let files: ReadonlyMap<string, Buffer>;
  if (options.verify) files = unpackSignedBundle(bytes);
  else {
    try {
      files = untar(gunzipSync(bytes));
    } catch (err) {
      throw new PolicyBuildError(`${options.source}: not a gzipped tar bundle (${(err as Error).message})`);
    }
  }
  const verified = options.verify ? await options.verify(files) : null;
  const manifest = parseManifest(files.get('/.manifest'));
  const order = checkSerial(manifest.serial, options.floor, sha256, options.verify !== null);
  const contents = files.has('/policy.wasm') ? readBundleFiles(files, options.source) : await compileRegoBundle(files, options);
  const facts: BundleFacts = {
    sha256,
    manifestRevision: manifest.revision,
    serial: manifest.serial,
    order,
    signedBy: verified?.keyId ?? null,
    scope: verified?.scope ?? null,
  };
  // A manifest's revision is a claim; only a verified signature makes it one the gateway can stand behind.
  const revision = verified && manifest.revision ? manifest.revision : `sha256:${sha256}`;
  return { contents, revision, facts };
}

/** Writes the members out and compiles them as a Rego bundle. */
async function compileRegoBundle(files: ReadonlyMap<string, Buffer>, options: LoadBundleOptions): Promise<BundleContents> {
  if (![...files.keys()].some((name) => name.endsWith('.rego')))
    throw new PolicyBuildError(`${options.source}: the bundle has neither /policy.wasm nor any .rego module`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bundle-'));
  try {
    for (const [name, body] of files) {
      if (name === '/.signatures.json') continue;
      if (!SAFE_MEMBER.test(name)) throw new BundleRefusedError('malformed', `${name}: a member name that cannot be unpacked safely`, name.slice(1));
      const target = path.join(dir, name);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, body);
    }
    return await options.compileRego(dir).catch((err: Error) => {
      throw err instanceof PolicyBuildError ? new PolicyBuildError(err.message.split(dir).join(options.source)) : err;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Compiling policies: runs the real OPA compiler (`opa build -t wasm`) with a capabilities file
 * listing exactly the builtins the engine provides, then reads the bundle it wrote. A directory
 * of .rego files or a prebuilt bundle (.tar.gz) are both accepted. OPA runs inside the policy
 * directory on `.`, so neither the bundle nor the Wasm module holds an absolute path, and the
 * revision is the sources' content address (policy-sources.ts), written into the manifest too.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { PolicyBuildError } from '../errors';
import { knownDifferenceWarnings } from './builtins/known-differences';
import { requirePassingTests } from './policy-tests';
import { writeCapabilitiesFile } from './capabilities';
import { readSources, type PolicySources, type SourceFile } from './policy-sources';
import { type BundleFacts, loadBundle } from './bundle-load';
import type { SerialFloor } from './bundle-manifest';
import { bundleVerifier, type BundleVerificationOptions } from './bundle-signature';

const run = promisify(execFile);

/** What a bundle holds. */
export interface BundleContents {
  readonly wasm: Buffer;
  readonly data: unknown;
  readonly entrypoints: readonly string[];
  /** The Rego files it was built from, by member name without the leading `/`. */
  readonly modules: readonly string[];
}

/** A compiled policy: the Wasm module, its data, and what it was compiled from. */
export interface CompiledPolicy extends BundleContents {
  /** The sources' content address (policy-sources.ts): the policy revision in audit records. */
  readonly revision: string;
  /** The files the revision covers, with their digests. */
  readonly files: readonly SourceFile[];
  /** Calls to builtins that behave differently from OPA (PC_BUILTIN_DIFFERS), as `file:line: …`. */
  readonly warnings: readonly string[];
  /** The content address of what was read (policy-sources.ts): what the store compares with the files on disk. Equal to revision but for a signed bundle naming its own. */
  readonly source: string;
  /** A bundle file: its digest, manifest, signature and order (bundle-load.ts). */
  readonly bundle?: BundleFacts;
}

/** Builds attempted while the directory keeps changing under OPA, before giving up. */
const BUILD_ATTEMPTS = 3;

/** Locates the OPA CLI: explicit path, then $PORTCULLIS_OPA, then `opa` on PATH. */
export function opaBinary(explicit: string | null): string {
  return explicit ?? process.env.PORTCULLIS_OPA ?? 'opa';
}

/** One entry of a tar archive as stored: its name (GNU long names applied), type flag and body. */
export interface TarEntry {
  readonly name: string;
  readonly type: string;
  readonly body: Buffer;
}

/** The entries of a tar archive in order (ustar/GNU, as `opa build` writes), names as stored. */
export function* tarEntries(tar: Buffer): Generator<TarEntry> {
  let off = 0;
  let longName: string | null = null;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, len: number) =>
      header
        .subarray(start, start + len)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 0x30);
    const prefix = field(345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = null;
    const body = tar.subarray(off + 512, off + 512 + size);
    if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '');
    else yield { name, type, body };
    off += 512 + Math.ceil(size / 512) * 512;
  }
}

/** Reads the files of a tar archive, by name with one leading `/` (a later file of the same name wins). */
export function untar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const { name, type, body } of tarEntries(tar)) {
    if (type === '0' || type === '\0') files.set(`/${name.replace(/^\.?\/+/, '')}`, Buffer.from(body));
  }
  return files;
}

/** Parses a bundle (.tar.gz). */
export function readBundle(bundle: Buffer, source: string): BundleContents {
  let files: Map<string, Buffer>;
  try {
    files = untar(gunzipSync(bundle));
  } catch (err) {
    throw new PolicyBuildError(`${source}: not a gzipped tar bundle (${(err as Error).message})`);
  }
  return readBundleFiles(files, source);
}

/** A Wasm bundle's contents from its members (named with a leading `/`). */
export function readBundleFiles(files: ReadonlyMap<string, Buffer>, source: string): BundleContents {
  const wasm = files.get('/policy.wasm');
  if (!wasm) throw new PolicyBuildError(`${source}: the bundle has no /policy.wasm; build it with 'opa build -t wasm'`);
  const dataBytes = files.get('/data.json') ?? Buffer.from('{}');
  let data: unknown;
  let entrypoints: string[] = [];
  try {
    data = JSON.parse(dataBytes.toString('utf8'));
    const manifest = files.get('/.manifest');
    if (manifest) entrypoints = ((JSON.parse(manifest.toString('utf8')).wasm ?? []) as { entrypoint: string }[]).map((w) => w.entrypoint);
  } catch (err) {
    throw new PolicyBuildError(`${source}: invalid JSON in the bundle (${(err as Error).message})`);
  }
  const modules = [...files.keys()].filter((name) => name.endsWith('.rego')).map((name) => name.slice(1));
  return { wasm, data, entrypoints, modules };
}

/** Options for compilePolicy. */
export interface CompileOptions {
  readonly path: string;
  readonly entrypoint: string;
  readonly opa: string | null;
  /** Write the bundle here too (for `portcullis policy build -o`). */
  readonly output?: string;
  /** `policy.require_tests`: refuse the policy unless its own tests pass (policy-tests.ts). */
  readonly requireTests?: boolean;
  /** A bundle file: verify its signature with these (policy.signing); null or absent: not verified. */
  readonly signing?: BundleVerificationOptions | null;
  /** A bundle file: the highest serial accepted before (anti-rollback). */
  readonly floor?: SerialFloor | null;
}

/** Compiles a policy directory (or reads a prebuilt bundle). Throws PolicyBuildError. */
export async function compilePolicy(options: CompileOptions): Promise<CompiledPolicy> {
  const withTests = options.requireTests === true;
  const sources = await readSources(options.path, { withTests });
  const info = await stat(options.path);
  if (options.requireTests) await requirePassingTests(opaBinary(options.opa), options.path, info.isDirectory());
  if (!info.isDirectory()) {
    const bytes = sources.contents.get(path.basename(options.path));
    if (!bytes) throw new PolicyBuildError(`${options.path}: no such file or directory`);
    const loaded = await loadBundle(bytes, {
      source: options.path,
      entrypoint: options.entrypoint,
      verify: options.signing ? bundleVerifier(options.signing) : null,
      floor: options.floor ?? null,
      compileRego: (dir) => compileRegoBundleDirectory(options, dir),
    });
    return checkEntrypoint(
      { ...loaded.contents, revision: loaded.revision, source: sources.revision, bundle: loaded.facts, files: sources.files, warnings: [] },
      options,
    );
  }
  let before = sources;
  for (let attempt = 1; ; attempt++) {
    const bundle = await build(options, before.revision);
    // An edit that landed while OPA read the files: the bundle may mix them. Build again.
    const after = await readSources(options.path, { withTests });
    if (after.revision === before.revision) {
      const warnings = await knownDifferenceWarnings(options.path);
      return checkEntrypoint(
        checkModules({ ...bundle, revision: before.revision, source: before.revision, files: before.files, warnings }, before, options),
        options,
      );
    }
    if (attempt === BUILD_ATTEMPTS)
      throw new PolicyBuildError(`policy in ${options.path} kept changing during ${BUILD_ATTEMPTS} builds; it is built again on the next change`);
    before = after;
  }
}

/** Compiles a directory holding a Rego bundle's members (bundle-load.ts) with `opa build -b`. */
export function compileRegoBundleDirectory(options: Pick<CompileOptions, 'entrypoint' | 'opa'>, dir: string): Promise<BundleContents> {
  return build({ entrypoint: options.entrypoint, opa: options.opa, path: dir }, 'bundle', true);
}

/** Runs `opa build` in the policy directory, with the revision in the manifest. */
async function build(options: CompileOptions, revision: string, asBundle = false): Promise<BundleContents> {
  const opa = opaBinary(options.opa);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'portcullis-build-'));
  try {
    const caps = path.join(tmp, 'capabilities.json');
    try {
      await writeCapabilitiesFile(opa, caps);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.code === 'EACCES') {
        throw new PolicyBuildError(`cannot run the OPA CLI "${opa}" (${e.code}); run 'npm start' or 'npm test' once to install it, or set PORTCULLIS_OPA`);
      }
      throw new PolicyBuildError(`cannot prepare the capabilities file with "${opa}": ${e.message.split('\n')[0]}`);
    }
    const out = options.output ? path.resolve(options.output) : path.join(tmp, 'bundle.tar.gz');
    // Tests stay out of the shipped module (they would add entrypoints and bytes); hidden
    // entries are skipped, which includes the ..data copies in a Kubernetes ConfigMap mount.
    // policy-sources.ts applies the same rules to what the revision covers.
    const args = [
      'build',
      '-t',
      'wasm',
      '-e',
      options.entrypoint,
      '--capabilities',
      caps,
      '--ignore',
      '*_test.rego',
      // In bundle mode OPA reads the .manifest itself, and '.*' would match the root '.'.
      ...(asBundle ? [] : ['--ignore', '.*']),
      '-r',
      revision,
      '-o',
      out,
      // A Rego bundle (opa build -b) is compiled as one: its manifest's roots apply.
      ...(asBundle ? ['-b'] : []),
      '.',
    ];
    try {
      await run(path.isAbsolute(opa) || !opa.includes('/') ? opa : path.resolve(opa), args, { cwd: options.path, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      const detail = (e.stderr || e.stdout || e.message).trim();
      throw new PolicyBuildError(`policy in ${options.path} does not compile:\n${detail}`);
    }
    return readBundle(await readFile(out), out);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The revision must cover exactly the Rego files OPA compiled (the bundle holds a stub of each,
 * not its bytes; the re-read after the build covers the bytes).
 */
function checkModules(policy: CompiledPolicy, sources: PolicySources, options: CompileOptions): CompiledPolicy {
  // Tests are left out of the build (and counted in the revision only when they gate the policy).
  const covered = [...sources.contents.keys()].filter((name) => name.endsWith('.rego') && !name.endsWith('_test.rego')).sort();
  const compiled = [...policy.modules].sort();
  if (covered.join('\n') !== compiled.join('\n')) {
    throw new PolicyBuildError(
      `policy in ${options.path}: OPA compiled other Rego files (${compiled.join(', ')}) than the revision covers (${covered.join(', ')})`,
    );
  }
  return policy;
}

function checkEntrypoint(policy: CompiledPolicy, options: CompileOptions): CompiledPolicy {
  if (policy.entrypoints.length > 0 && !policy.entrypoints.includes(options.entrypoint)) {
    throw new PolicyBuildError(`${options.path}: the bundle has no entrypoint "${options.entrypoint}" (it has: ${policy.entrypoints.join(', ')})`);
  }
  return policy;
}

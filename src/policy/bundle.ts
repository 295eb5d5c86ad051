/**
 * Compiling policies: runs the real OPA compiler (`opa build -t wasm`) with a capabilities file
 * listing exactly the builtins the engine provides, then reads the bundle it wrote. A directory
 * of .rego files or a prebuilt bundle (.tar.gz) are both accepted.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { PolicyBuildError } from '../errors';
import { warnOfKnownDifferences } from './builtins/known-differences';
import { requirePassingTests } from './policy-tests';
import { writeCapabilitiesFile } from './capabilities';

const run = promisify(execFile);

/** A compiled policy: the Wasm module, its data and its revision. */
export interface CompiledPolicy {
  readonly wasm: Buffer;
  readonly data: unknown;
  /** `sha256:<hex>` over the Wasm module and data.json: the policy revision in audit records. */
  readonly revision: string;
  readonly entrypoints: readonly string[];
}

/** Locates the OPA CLI: explicit path, then $PORTCULLIS_OPA, then `opa` on PATH. */
export function opaBinary(explicit: string | null): string {
  return explicit ?? process.env.PORTCULLIS_OPA ?? 'opa';
}

/** Reads the files of a tar archive (ustar/GNU, as `opa build` writes). */
export function untar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let off = 0;
  let longName: string | null = null;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, len: number) => header.subarray(start, start + len).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 0x30);
    const prefix = field(345, 155);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = null;
    const body = tar.subarray(off + 512, off + 512 + size);
    if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '');
    else if (type === '0' || type === '\0') {
      name = `/${name.replace(/^\.?\/+/, '')}`;
      files.set(name, Buffer.from(body));
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Parses a bundle (.tar.gz) into a CompiledPolicy. */
export function readBundle(bundle: Buffer, source: string): CompiledPolicy {
  let files: Map<string, Buffer>;
  try {
    files = untar(gunzipSync(bundle));
  } catch (err) {
    throw new PolicyBuildError(`${source}: not a gzipped tar bundle (${(err as Error).message})`);
  }
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
  const revision = `sha256:${createHash('sha256').update(wasm).update(dataBytes).digest('hex')}`;
  return { wasm, data, revision, entrypoints };
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
}

/** Compiles a policy directory (or reads a prebuilt bundle). Throws PolicyBuildError. */
export async function compilePolicy(options: CompileOptions): Promise<CompiledPolicy> {
  const info = await stat(options.path).catch(() => null);
  if (!info) throw new PolicyBuildError(`${options.path}: no such file or directory`);
  if (options.requireTests) await requirePassingTests(opaBinary(options.opa), options.path, info.isDirectory());
  if (!info.isDirectory()) return checkEntrypoint(readBundle(await readFile(options.path), options.path), options);

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
    const out = options.output ?? path.join(tmp, 'bundle.tar.gz');
    // Tests stay out of the shipped module (they would add entrypoints and bytes); hidden
    // entries are skipped, which includes the ..data copies in a Kubernetes ConfigMap mount.
    const args = ['build', '-t', 'wasm', '-e', options.entrypoint, '--capabilities', caps, '--ignore', '*_test.rego', '--ignore', '.*', '-o', out, options.path];
    try {
      await run(opa, args, { maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      const detail = (e.stderr || e.stdout || e.message).trim();
      throw new PolicyBuildError(`policy in ${options.path} does not compile:\n${detail}`);
    }
    await warnOfKnownDifferences(options.path);
    return checkEntrypoint(readBundle(await readFile(out), out), options);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

function checkEntrypoint(policy: CompiledPolicy, options: CompileOptions): CompiledPolicy {
  if (policy.entrypoints.length > 0 && !policy.entrypoints.includes(options.entrypoint)) {
    throw new PolicyBuildError(`${options.path}: the bundle has no entrypoint "${options.entrypoint}" (it has: ${policy.entrypoints.join(', ')})`);
  }
  return policy;
}

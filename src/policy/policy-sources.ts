/**
 * The policy's sources and its revision, a content address: the same files give the same
 * revision in any directory, on any machine. The files are those `opa build` reads from the
 * directory (the rules below mirror the flags bundle.ts passes it), each with its SHA-256; the
 * revision is `sha256:` of the listing `sha256sum` prints for them, sorted by path, so an
 * auditor can recompute it (docs/policy.md, "The revision"):
 *
 *   cd policies && find -L . -name '.?*' -prune -o -type f \( -name '*.rego' -o -name '*.json' \
 *     -o -name '*.yaml' -o -name '*.yml' \) ! -name '*_test.rego' -print | sed 's|^\./||' \
 *     | LC_ALL=C sort | tr '\n' '\0' | xargs -0 -r sha256sum | sha256sum
 *
 * With `policy.require_tests`, the policy's own `*_test.rego` decide whether it goes into force,
 * so they are sources too: the listing keeps them (the one-liner without `! -name '*_test.rego'`),
 * and editing only a test is a new revision, tested before it is enforced.
 *
 * A prebuilt bundle (a file) is one source: its revision is `sha256:` of its bytes.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { PolicyBuildError } from '../errors';

/** One source file: its path relative to the policy directory (`/`-separated) and digest. */
export interface SourceFile {
  readonly path: string;
  /** Hex SHA-256 of the file's bytes. */
  readonly sha256: string;
}

/** What a revision covers. */
export interface PolicySources {
  /** `sha256:<hex>`. */
  readonly revision: string;
  /** Sorted by path, bytewise (as `LC_ALL=C sort`). */
  readonly files: readonly SourceFile[];
  /** The bytes of each file, by path (bundle.ts checks them against what OPA compiled). */
  readonly contents: ReadonlyMap<string, Buffer>;
  /** The directories holding them, root first (absolute; what the watcher watches). */
  readonly directories: readonly string[];
}

/** Files OPA loads from a directory: Rego modules and JSON/YAML data documents. */
const LOADED = /\.(rego|json|ya?ml)$/;
/** Skipped, as bundle.ts tells OPA (`--ignore '*_test.rego' --ignore '.*'`); tests kept when they gate the policy. */
const skipped = (name: string, withTests: boolean) => name.startsWith('.') || (!withTests && name.endsWith('_test.rego'));

/** Options of readSources. */
export interface ReadSourcesOptions {
  /** Count `*_test.rego` as sources (`policy.require_tests`). */
  readonly withTests?: boolean;
}

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** Reads the sources at `root` (a policy directory or a bundle file). Throws PolicyBuildError. */
export async function readSources(root: string, options: ReadSourcesOptions = {}): Promise<PolicySources> {
  const info = await stat(root).catch(() => null);
  if (!info) throw new PolicyBuildError(`${root}: no such file or directory`);
  const directories: string[] = [];
  const found = info.isDirectory() ? await walk(root, '', new Set(), directories, options.withTests === true) : [path.basename(root)];
  const contents = new Map<string, Buffer>();
  for (const rel of found) {
    const bytes = await readFile(info.isDirectory() ? path.join(root, rel) : root).catch(() => null);
    if (bytes) contents.set(rel, bytes); // gone since the listing: an edit in progress, not a source
  }
  const files = [...contents.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map((p) => ({ path: p, sha256: sha256(contents.get(p)!) }));
  const revision = info.isDirectory() ? sha256(files.map((f) => `${f.sha256}  ${f.path}\n`).join('')) : (files[0]?.sha256 ?? sha256(''));
  return { revision: `sha256:${revision}`, files, contents, directories: info.isDirectory() ? directories : [path.dirname(root)] };
}

/** Relative paths of the loaded files under root/rel, following symlinks as OPA does. */
async function walk(root: string, rel: string, ancestors: Set<string>, directories: string[], withTests: boolean): Promise<string[]> {
  const dir = path.join(root, rel);
  const real = await realpath(dir).catch(() => null);
  if (!real) return []; // removed while we looked
  if (ancestors.has(real)) throw new PolicyBuildError(`${dir}: a symlink loop in the policy directory`);
  const inside = new Set(ancestors).add(real);
  directories.push(dir);
  const out: string[] = [];
  for (const name of await readdir(dir).catch(() => [])) {
    if (skipped(name, withTests)) continue;
    const child = rel ? `${rel}/${name}` : name;
    // sha256sum escapes these in its listing, so the one-liner would print another revision.
    if (/[\\\n]/.test(name)) throw new PolicyBuildError(`${path.join(dir, name)}: a policy file name may not contain a backslash or a newline`);
    const st = await stat(path.join(dir, name)).catch(() => null);
    if (st?.isDirectory()) out.push(...(await walk(root, child, inside, directories, withTests)));
    else if (st?.isFile() && LOADED.test(name)) out.push(child);
  }
  return out;
}

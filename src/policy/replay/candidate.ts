/**
 * The candidate policy of a replay: compiled exactly as the gateway compiles it (compilePolicy,
 * WasmPolicyEngine), and what it reads of its input, found by OPA's own parser on its Rego
 * sources (`opa parse --format json`, input-refs.ts).
 *
 * A directory's sources are the Rego files the build compiled (tests and hidden files left out,
 * as policy-sources.ts and bundle.ts do). A bundle built with `opa build -t wasm` does not hold
 * its sources: its `.rego` members are stubs (package, imports, the rules not compiled into the
 * module), so reading them would miss every rule that matters. For such a bundle the reads are
 * unknown (any omission makes a record undeterminable); the non-deterministic builtins are
 * still found, conservatively, by their names in the module's bytes (the module names each host
 * builtin it calls). A Rego bundle (no policy.wasm) has its sources as members; they are parsed.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { PolicyBuildError } from '../../errors';
import { compilePolicy, opaBinary, untar } from '../bundle';
import { WasmPolicyEngine, type PolicyEngine } from '../engine';
import { inputReadsOf, NONDETERMINISTIC_BUILTINS, type InputReads } from './input-refs';

const run = promisify(execFile);

/** Where the candidate is and how it is called. */
export interface CandidateSource {
  /** A policy directory or a bundle (.tar.gz). */
  readonly path: string;
  readonly entrypoint: string;
  /** The OPA CLI (null: $PORTCULLIS_OPA, then `opa` on PATH). */
  readonly opa: string | null;
}

/** A loaded candidate. */
export interface Candidate {
  readonly engine: PolicyEngine;
  readonly revision: string;
  /** What it reads; null when its sources are not known (a Wasm bundle). */
  readonly reads: InputReads | null;
  /** Non-deterministic builtins it calls (from the sources, or the module's bytes). */
  readonly nondeterministic: readonly string[];
  /** `rego` when the reads come from the sources, `wasm` when only the module is known. */
  readonly sources: 'rego' | 'wasm';
}

/** Compiles the candidate and finds what it reads. Throws PolicyBuildError when it does not compile. */
export async function loadCandidate(source: CandidateSource): Promise<Candidate> {
  const compiled = await compilePolicy(source);
  const engine = await WasmPolicyEngine.create(compiled, source.entrypoint).catch((err: Error) => {
    throw new PolicyBuildError(err.message);
  });
  const opa = opaBinary(source.opa);
  const info = await stat(source.path);
  if (info.isDirectory()) {
    const files = compiled.files.filter((f) => f.path.endsWith('.rego')).map((f) => path.join(source.path, f.path));
    const reads = inputReadsOf(await Promise.all(files.map((f) => parseModule(opa, f))));
    return { engine, revision: compiled.revision, reads, nondeterministic: reads.nondeterministic, sources: 'rego' };
  }
  const members = untar(gunzipSync(await readFile(source.path)));
  const wasm = members.get('/policy.wasm');
  if (wasm) {
    const text = wasm.toString('latin1');
    const nondeterministic = NONDETERMINISTIC_BUILTINS.filter((name) => text.includes(name));
    return { engine, revision: compiled.revision, reads: null, nondeterministic, sources: 'wasm' };
  }
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'portcullis-replay-'));
  try {
    const rego = [...members].filter(([name]) => name.endsWith('.rego') && !name.endsWith('_test.rego'));
    const parsed = await Promise.all(
      rego.map(async ([, bytes], i) => {
        const file = path.join(tmp, `${i}.rego`);
        await writeFile(file, bytes);
        return parseModule(opa, file);
      }),
    );
    const reads = inputReadsOf(parsed);
    return { engine, revision: compiled.revision, reads, nondeterministic: reads.nondeterministic, sources: 'rego' };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** OPA's AST of one module, as JSON. */
async function parseModule(opa: string, file: string): Promise<unknown> {
  try {
    const { stdout } = await run(opa, ['parse', '--format', 'json', file], { maxBuffer: 256 * 1024 * 1024 });
    return JSON.parse(stdout);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new PolicyBuildError(`cannot parse ${file} with "${opa}": ${(e.stderr || e.message).trim()}`);
  }
}

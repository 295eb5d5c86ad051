/**
 * G18, differentially: the same Rego through the real OPA CLI (`opa eval`, `opa test`: the Go
 * evaluator a CISO's tests run on) and through the gateway's engine (the policy built by
 * `opa build -t wasm` against our capabilities file, loaded by WasmPolicyEngine with the host
 * builtins, decided by `decide()`), requiring the same results.
 *
 * (a) The builtin corpus, test/fixtures/builtins-corpus/: each rule is a case. OPA evaluates
 *     them all in one `opa eval`; the Wasm side is one build with one entrypoint per case, each
 *     wrapped as a decision `{"allow": true, "value": <case>}` so it goes through decide()
 *     exactly as a gateway decision does. A case that is undefined in OPA (a builtin error, which
 *     `opa eval` turns into undefined) must deny with an error in the gateway: fail closed.
 *     A case marked `# known difference: <what>` must still differ, and <what> must be a
 *     builtin of KNOWN_DIFFERENCES (src/policy/builtins/known-differences.ts) or one of the
 *     GENERAL_DIFFERENCES: when one is fixed, the table has to shrink with it.
 * (b) The starter library's own tests, policies/**_test.rego, with its data.json: each test
 *     rule is an entrypoint, and it must pass in the gateway exactly when `opa test` passes it,
 *     except for the tests listed in FAIL_CLOSED below.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KNOWN_DIFFERENCES } from '../../src/policy/builtins/known-differences';
import type { CompiledPolicy } from '../../src/policy/bundle';
import { writeCapabilitiesFile } from '../../src/policy/capabilities';
import { WasmPolicyEngine, type Decision, type PolicyInput } from '../../src/policy/engine';
import { OPA } from '../helpers/harness';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..', '..');
const CORPUS = path.join(ROOT, 'test', 'fixtures', 'builtins-corpus');
const POLICIES = path.join(ROOT, 'policies');
const NO_INPUT = {} as PolicyInput;
/**
 * Differences of no single builtin (docs/policy.md, Builtins): the Wasm module iterates sets in
 * hash order, and host builtins see int64 nanosecond counts as doubles.
 */
const GENERAL_DIFFERENCES = ['set iteration order', 'nanoseconds beyond 2^53'];

/**
 * Starter-library tests that pass in `opa test` and fail in the gateway, each for the documented
 * reason: a host builtin's error fails the whole evaluation (a deny, without the policy's own
 * reason), where OPA makes that one expression undefined.
 */
const FAIL_CLOSED = new Map([
  ['portcullis/lib/hours_test/test_bad_configuration_fails_closed', /^evaluation failed: time\.weekday: unknown time zone Mars\/Olympus_Mons$/],
]);

/** One corpus case: rule `rule` of package `pkg` (e.g. corpus.sprintf). */
interface Case {
  readonly pkg: string;
  readonly rule: string;
  /** The wrapper rule that turns the case into a decision. */
  readonly wrapper: string;
  /** From a `# known difference: <what>` line right above the rule. */
  readonly knownDifference: string | null;
}

/** The cases, read from the corpus files: every top-level `name := …` rule. */
function corpusCases(): Case[] {
  const cases: Case[] = [];
  for (const file of readdirSync(CORPUS)
    .filter((f) => f.endsWith('.rego'))
    .sort()) {
    const text = readFileSync(path.join(CORPUS, file), 'utf8');
    const pkg = /^package (\S+)$/m.exec(text)![1];
    for (const [, known, rule] of text.matchAll(/^(?:# known difference: (.+)\n)?([a-z_0-9]+) :=/gm)) {
      cases.push({ pkg, rule, wrapper: `${pkg.replace(/\./g, '_')}__${rule}`, knownDifference: known ?? null });
    }
  }
  return cases;
}

/**
 * `opa build -t wasm` of `dir` with the gateway's capabilities file and the given entrypoints,
 * as the gateway builds (bundle.ts), then the module and data as the engine takes them.
 */
async function buildWasm(dir: string, entrypoints: readonly string[], tmp: string): Promise<CompiledPolicy> {
  const caps = path.join(tmp, 'capabilities.json');
  await writeCapabilitiesFile(OPA, caps);
  const out = path.join(tmp, `${path.basename(dir)}.tar.gz`);
  await run(OPA, ['build', '-t', 'wasm', '--capabilities', caps, '-o', out, ...entrypoints.flatMap((e) => ['-e', e]), dir], { maxBuffer: 64 * 1024 * 1024 });
  await run('tar', ['-xzf', out, '-C', tmp, '/policy.wasm', '/data.json']);
  const data = JSON.parse(await readFile(path.join(tmp, 'data.json'), 'utf8')) as unknown;
  return { wasm: await readFile(path.join(tmp, 'policy.wasm')), data, revision: 'differential', entrypoints } as CompiledPolicy;
}

async function decideEach(bundle: CompiledPolicy, entrypoints: readonly string[]) {
  const decisions = new Map<string, Decision>();
  for (const entrypoint of entrypoints) {
    const engine = await WasmPolicyEngine.create(bundle, entrypoint);
    decisions.set(entrypoint, engine.decide(NO_INPUT));
  }
  return decisions;
}

const CASES = corpusCases();

describe('G18: the gateway evaluates builtins as `opa eval` does (test/fixtures/builtins-corpus)', () => {
  let tmp: string;
  let opaValues: Record<string, Record<string, unknown>>;
  let decisions: Map<string, Decision>;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'portcullis-differential-'));
    const src = path.join(tmp, 'corpus');
    await cp(CORPUS, src, { recursive: true });
    const { stdout } = await run(OPA, ['eval', '--format', 'json', '--data', CORPUS, 'data.corpus'], { maxBuffer: 64 * 1024 * 1024 });
    const corpus = JSON.parse(stdout).result[0].expressions[0].value as Record<string, Record<string, unknown>>;
    opaValues = Object.fromEntries(Object.entries(corpus).map(([name, rules]) => [`corpus.${name}`, rules]));
    const wrappers = CASES.map((c) => `${c.wrapper} := {"allow": true, "value": data.${c.pkg}.${c.rule}}`);
    await writeFile(path.join(src, 'differential.rego'), `package differential\n\n${wrappers.join('\n\n')}\n`);
    const entrypoints = CASES.map((c) => `differential/${c.wrapper}`);
    decisions = await decideEach(await buildWasm(src, entrypoints, tmp), entrypoints);
  });

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('has at least 60 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });

  it.each(CASES.map((c) => [`${c.pkg}.${c.rule}`, c] as const))('%s', (_name, c) => {
    const decision = decisions.get(`differential/${c.wrapper}`)!;
    const gateway = { error: decision.error, value: decision.extra?.value };
    const opaDefined = Object.hasOwn(opaValues[c.pkg] ?? {}, c.rule);
    if (c.knownDifference !== null) {
      expect([...Object.keys(KNOWN_DIFFERENCES), ...GENERAL_DIFFERENCES]).toContain(c.knownDifference);
      expect(gateway).not.toEqual({ error: undefined, value: opaDefined ? opaValues[c.pkg][c.rule] : undefined });
    } else if (!opaDefined) {
      // Undefined in OPA: a builtin error. The gateway must deny, saying the policy failed.
      expect(decision.allow).toBe(false);
      expect(decision.error).toMatch(/^evaluation failed: /);
    } else {
      expect(gateway).toEqual({ error: undefined, value: opaValues[c.pkg][c.rule] });
    }
  });
});

describe("G18: the starter library's tests pass in the gateway exactly as `opa test` passes them", () => {
  let tmp: string;
  let results: Array<{ entrypoint: string; opaPassed: boolean }>;
  let decisions: Map<string, Decision>;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'portcullis-differential-'));
    const { stdout } = await run(OPA, ['test', '--format', 'json', POLICIES], { maxBuffer: 64 * 1024 * 1024 }).catch((err: { stdout: string }) => ({
      stdout: err.stdout,
    })); // a failing test exits 2
    results = (JSON.parse(stdout) as Array<{ package: string; name: string; fail?: boolean; error?: unknown }>).map((t) => ({
      entrypoint: `${t.package.replace(/^data\./, '').replace(/\./g, '/')}/${t.name}`,
      opaPassed: !t.fail && !t.error,
    }));
    const entrypoints = results.map((r) => r.entrypoint);
    decisions = await decideEach(await buildWasm(POLICIES, entrypoints, tmp), entrypoints);
  });

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('runs every test of the library through both', () => {
    expect(results.length).toBeGreaterThanOrEqual(100);
    const disagreements = results
      .filter((r) => (decisions.get(r.entrypoint)!.allow === true) !== r.opaPassed)
      .filter((r) => !FAIL_CLOSED.get(r.entrypoint)?.test(decisions.get(r.entrypoint)!.error ?? ''))
      .map(
        (r) =>
          `${r.entrypoint}: opa test ${r.opaPassed ? 'passes' : 'fails'}, the gateway ${r.opaPassed ? 'fails' : 'passes'} (${decisions.get(r.entrypoint)!.error ?? ''})`,
      );
    expect(disagreements).toEqual([]);
    for (const entrypoint of FAIL_CLOSED.keys()) expect(decisions.get(entrypoint)?.allow).toBe(false);
  });
});

/**
 * Differential test of a bundle (issue 14): ONE signed bundle of the starter library, built by the
 * real `opa build -b --signing-key`, decides the same inputs the same way in OPA (`opa eval
 * --bundle`) and in Portcullis (PolicyStore with policy.signing, as the gateway loads a bundle file).
 *
 * The inputs come from the starter library's own tests, found by the real OPA: `opa parse --format
 * json` of each `*_test.rego`, and every `with input as <term>` in it.
 *   - a constant term (object, array, string, number, boolean, null, nested) is turned into JSON here;
 *   - a ground call (a test helper such as `call("billing", "GET", "/charges/1")`, or a builtin,
 *     whose arguments are constants or ground calls again) is evaluated by `opa eval` in the test's
 *     package, so the input is exactly the one the test passes;
 *   - a term that refers to a variable (`with input as c` in a loop) is skipped and counted.
 * The library yields more than 100 distinct inputs this way, so no variants are derived.
 *
 * OPA's value of `data.portcullis.decision` goes through the gateway's interpretResult, so both
 * sides are compared as gateway Decisions: allow, reasons, the extra fields (mask, credential, …)
 * and, for an undefined result, the error.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual, promisify } from 'node:util';
import type { PolicySigningConfig } from '../../src/config/types';
import { knownDifferenceWarnings } from '../../src/policy/builtins/known-differences';
import { type Decision, interpretResult, type PolicyInput } from '../../src/policy/engine';
import { PolicyStore } from '../../src/policy/policy-store';
import { OPA } from '../helpers/harness';

const run = promisify(execFile);
const POLICIES = path.join(__dirname, '..', '..', 'policies');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bundle-diff-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Inputs on which the two engines are known to differ, each for a documented reason
 * (KNOWN_DIFFERENCES in src/policy/builtins/known-differences.ts, FAIL_CLOSED in
 * builtins-differential.test.ts): canonical JSON of the input → the reason. They must still
 * differ; every other input must agree. None so far: the starter library calls no builtin of
 * that table (checked below), and its one fail-closed test (an unknown time zone) comes from
 * the test's own data, not from an input.
 */
const DOCUMENTED: ReadonlyMap<string, string> = new Map();

/** A term of OPA's AST JSON (`opa parse --format json`). */
interface Term {
  readonly type: string;
  readonly value: any;
}

const SCALARS = new Set(['string', 'number', 'boolean', 'null']);

/** A constant: scalars, and arrays and objects (keys too) of constants. */
function isConstant(t: Term): boolean {
  if (SCALARS.has(t.type)) return true;
  if (t.type === 'array') return (t.value as Term[]).every(isConstant);
  if (t.type === 'object') return (t.value as [Term, Term][]).every(([k, v]) => isConstant(k) && isConstant(v));
  return false;
}

/** A term with no variable: a constant, or a call whose operator is a plain ref and whose arguments are ground. */
function isGround(t: Term): boolean {
  if (t.type === 'array') return (t.value as Term[]).every(isGround);
  if (t.type === 'object') return (t.value as [Term, Term][]).every(([k, v]) => isGround(k) && isGround(v));
  if (t.type === 'call') {
    const [op, ...args] = t.value as Term[];
    const parts = op.value as Term[];
    return op.type === 'ref' && parts[0].type === 'var' && parts.slice(1).every((p) => p.type === 'string') && args.every(isGround);
  }
  return SCALARS.has(t.type);
}

/** A constant term as plain JSON; an object key that is not a string has no JSON form. */
function toJson(t: Term): unknown {
  switch (t.type) {
    case 'null':
      return null;
    case 'string':
    case 'number':
    case 'boolean':
      return t.value;
    case 'array':
      return (t.value as Term[]).map(toJson);
    default: {
      const out: Record<string, unknown> = {};
      for (const [k, v] of t.value as [Term, Term][]) {
        if (k.type !== 'string') throw new Error(`an object key of type ${k.type} has no JSON form`);
        out[k.value] = toJson(v);
      }
      return out;
    }
  }
}

/** A ground term back as Rego source, to evaluate it with `opa eval`. */
function toRego(t: Term): string {
  switch (t.type) {
    case 'null':
      return 'null';
    case 'string':
      return JSON.stringify(t.value);
    case 'number':
    case 'boolean':
      return String(t.value);
    case 'array':
      return `[${(t.value as Term[]).map(toRego).join(', ')}]`;
    case 'object':
      return `{${(t.value as [Term, Term][]).map(([k, v]) => `${toRego(k)}: ${toRego(v)}`).join(', ')}}`;
    default: {
      const [op, ...args] = t.value as Term[];
      const [head, ...rest] = op.value as Term[];
      return `${[head.value, ...rest.map((p) => p.value)].join('.')}(${args.map(toRego).join(', ')})`;
    }
  }
}

/** Every `with` modifier under an AST node. */
function withModifiers(node: unknown, out: { target: Term; value: Term }[] = []): { target: Term; value: Term }[] {
  if (Array.isArray(node)) for (const n of node) withModifiers(n, out);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (Array.isArray(o.with)) out.push(...(o.with as { target: Term; value: Term }[]));
    for (const v of Object.values(o)) withModifiers(v, out);
  }
  return out;
}

/** JSON with sorted keys: equal values, equal text. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** One `opa eval --format json` whose single expression's value is returned. */
async function opaValue(args: string[], query: string): Promise<unknown> {
  const { stdout } = await run(OPA, ['eval', '--format', 'json', ...args, query], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout).result?.[0]?.expressions?.[0]?.value;
}

interface Found {
  /** Canonical JSON → the input and the test file it first came from. */
  readonly inputs: Map<string, { readonly input: unknown; readonly from: string }>;
  readonly constant: number;
  readonly helper: number;
  /** `with input as` terms that refer to variables, skipped. */
  readonly skipped: number;
}

/** The inputs of the library's tests, through `opa parse` (and `opa eval` for the ground helper calls). */
async function testInputs(): Promise<Found> {
  const files = (readdirSync(POLICIES, { recursive: true }) as string[]).filter((f) => f.endsWith('_test.rego')).sort();
  const found = { inputs: new Map<string, { input: unknown; from: string }>(), constant: 0, helper: 0, skipped: 0 };
  const add = (input: unknown, from: string) => {
    const key = canonical(input);
    if (!found.inputs.has(key)) found.inputs.set(key, { input, from });
  };
  const perFile = await Promise.all(
    files.map(async (file) => {
      const { stdout } = await run(OPA, ['parse', '--format', 'json', path.join(POLICIES, file)], { maxBuffer: 64 * 1024 * 1024 });
      const ast = JSON.parse(stdout);
      const pkg = (ast.package.path as Term[])
        .slice(1)
        .map((p) => p.value)
        .join('.');
      const constants: unknown[] = [];
      const ground: string[] = [];
      let skipped = 0;
      for (const w of withModifiers(ast.rules)) {
        const target = w.target.value as Term[];
        if (w.target.type !== 'ref' || target.length !== 1 || target[0].value !== 'input') continue;
        if (isConstant(w.value)) constants.push(toJson(w.value));
        else if (isGround(w.value)) ground.push(toRego(w.value));
        else skipped++;
      }
      // The helper calls, in one run, in the test's package; each in a comprehension so that an
      // undefined one shows as [] instead of making the whole object undefined.
      const query = `{${ground.map((g, i) => `"${i}": [v | v := ${g}]`).join(', ')}}`;
      const values = ground.length ? ((await opaValue(['-d', POLICIES, '--package', pkg], query)) as Record<string, unknown[]>) : {};
      const helpers = ground.map((g, i) => {
        const v = values[String(i)];
        if (v?.length !== 1) throw new Error(`${file}: ${g} gave ${JSON.stringify(v)}, not one value`);
        return v[0];
      });
      return { file, constants, helpers, skipped };
    }),
  );
  for (const { file, constants, helpers, skipped } of perFile) {
    for (const c of constants) add(c, file);
    for (const h of helpers) add(h, file);
    found.constant += constants.length;
    found.helper += helpers.length;
    found.skipped += skipped;
  }
  return found;
}

/** The library without its tests, with the manifest, signed by `opa build -b`; the bundle's path and the public key. */
async function signedBundle(): Promise<{ file: string; pem: string; pubFile: string }> {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const pubFile = path.join(tmp, 'release.pub.pem');
  const privFile = path.join(tmp, 'release.pem');
  writeFileSync(pubFile, pem);
  writeFileSync(privFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const lib = path.join(tmp, 'lib');
  cpSync(POLICIES, lib, { recursive: true, filter: (src) => !src.endsWith('_test.rego') && !src.endsWith('.md') });
  writeFileSync(path.join(lib, '.manifest'), JSON.stringify({ revision: 'diff-1', metadata: { serial: 1 } }));
  const file = path.join(tmp, 'bundle.tar.gz');
  await run(OPA, ['build', '-b', '.', '--signing-key', privFile, '--signing-alg', 'ES256', '-o', file], { cwd: lib });
  return { file, pem, pubFile };
}

test('G18: one signed bundle of the starter library decides the inputs of its tests as OPA does (opa eval --bundle against PolicyStore)', async () => {
  const [found, bundle] = await Promise.all([testInputs(), signedBundle()]);
  const cases = [...found.inputs.values()];
  if (cases.length < 100) {
    throw new Error(
      `only ${cases.length} distinct inputs (${found.constant} constant, ${found.helper} helper calls, ${found.skipped} skipped: they refer to variables); 100 are needed`,
    );
  }
  // No builtin of the known-differences table is called by the library: none of them explains a difference.
  expect(await knownDifferenceWarnings(path.join(tmp, 'lib'))).toEqual([]);

  // OPA: every input in one run. The cases go in as --input (data from --data is not visible
  // beside a bundle that owns the root); `with input as` replaces it for each decision.
  const casesFile = path.join(tmp, 'cases.json');
  writeFileSync(casesFile, JSON.stringify({ cases: cases.map((c) => c.input) }));
  const query = '{i: d | some i; c := input.cases[i]; d := data.portcullis.decision with input as c}';
  const opaDecisions = (await opaValue(['--bundle', bundle.file, '--input', casesFile], query)) as Record<string, unknown>;

  // Portcullis: the same bytes, verified and compiled as the gateway loads a bundle file.
  const signing: PolicySigningConfig = {
    algorithm: 'ES256',
    key: { pem: bundle.pem, file: bundle.pubFile },
    keyId: 'default',
    scope: null,
    excludeFiles: [],
  };
  const store = new PolicyStore({ path: bundle.file, entrypoint: 'portcullis/decision', opa: OPA, watch: false, pollMs: 1000, signing });
  // Signed: the manifest's revision names the policy.
  expect(await store.load()).toBe('diff-1');

  const disagreements: string[] = [];
  const stale: string[] = [];
  let compared = 0;
  cases.forEach(({ input, from }, i) => {
    const key = String(i);
    const opa: Decision = interpretResult(key in opaDecisions ? [{ result: opaDecisions[key] }] : []);
    const portcullis = store.current.decide(input as PolicyInput);
    compared++;
    const same = isDeepStrictEqual(opa, portcullis);
    const documented = DOCUMENTED.get(canonical(input));
    if (documented !== undefined) {
      if (same) stale.push(`${canonical(input)} (${from}): listed as differing (${documented}) but now agrees`);
    } else if (!same) {
      disagreements.push(`input (${from}): ${JSON.stringify(input)}\n  opa:        ${JSON.stringify(opa)}\n  portcullis: ${JSON.stringify(portcullis)}`);
    }
  });
  if (disagreements.length || stale.length) {
    throw new Error(
      `${disagreements.length} of ${compared} inputs decided differently by OPA and Portcullis:\n${disagreements.join('\n')}${stale.length ? `\n${stale.join('\n')}` : ''}`,
    );
  }
  expect(compared).toBe(cases.length);
});

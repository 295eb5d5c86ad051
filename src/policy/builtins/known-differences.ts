/**
 * Builtins whose behaviour in the gateway still differs from OPA's Go evaluator (what `opa test`
 * runs), and the scan that finds calls to them in a policy's Rego so `policy build` and every
 * gateway load can say so. test/integration/builtins-differential.test.ts checks both ways: the
 * corpus cases marked `# known difference: <builtin>` must still differ, all others must agree.
 *
 * Left out on purpose: differences that only turn an OPA result into a deny (a host builtin that
 * refuses input OPA would take), and the order in which the Wasm module iterates a set (hash
 * order, where OPA sorts), which is a property of sets, not of one builtin. docs/policy.md lists
 * both.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** Builtin name → what differs, in a sentence. */
export const KNOWN_DIFFERENCES: Readonly<Record<string, string>> = Object.freeze({
  sprintf:
    'a set operand prints as an array in the Wasm module\'s order (["b", "a"]; OPA: {"a", "b"}), ' +
    'and numbers arrive as doubles: integers beyond 2^53 lose their low digits and an integral number ' +
    'below 1e21 written as a float (1234567.0, 1e6) prints as an integer (OPA: 1.234567e+06, 1e+06); ' +
    '`*` widths, `%[n]` argument indexes, `%#` on floats and %x/%b of floats are refused (the call is denied)',
  'json.marshal':
    "object keys and set members come out in the Wasm module's hash order, not sorted, " + 'and <, > and & are not escaped as \\u003c, \\u003e, \\u0026',
  format_int: 'a number outside the 32-bit range fails the evaluation (the call is denied)',
  'regex.split': "JavaScript regular expressions (the opa-wasm default), not Go's RE2",
  'yaml.marshal': "the yaml npm package (the opa-wasm default), not Go's YAML library",
  'yaml.unmarshal': "the yaml npm package (the opa-wasm default), not Go's YAML library",
  'yaml.is_valid': "the yaml npm package (the opa-wasm default), not Go's YAML library",
  'time.now_ns': 'read on every call, to the millisecond; OPA reads the clock once per evaluation',
});

/** A call, in a policy's source, to a builtin listed in {@link KNOWN_DIFFERENCES}. */
export interface KnownDifferenceCall {
  readonly builtin: string;
  /** The .rego file, relative to the policy directory, and the 1-based line of the call. */
  readonly file: string;
  readonly line: number;
}

/** Blanks out comments and string literals, keeping line breaks, so that only code is searched. */
function codeOnly(rego: string): string {
  return rego.replace(/#[^\n]*|"(?:[^"\\\n]|\\.)*"|`[^`]*`/g, (token) => token.replace(/[^\n]/g, ' '));
}

const CALL = new RegExp(
  `(?<![\\w.])(${Object.keys(KNOWN_DIFFERENCES)
    .map((n) => n.replace(/\./g, '\\.'))
    .join('|')})\\s*\\(`,
  'g',
);

/** Every call to a builtin of {@link KNOWN_DIFFERENCES} in one Rego module. */
export function findKnownDifferenceCalls(file: string, rego: string): KnownDifferenceCall[] {
  const code = codeOnly(rego);
  const calls: KnownDifferenceCall[] = [];
  for (const match of code.matchAll(CALL)) {
    const line = code.slice(0, match.index).split('\n').length;
    calls.push({ builtin: match[1], file, line });
  }
  return calls;
}

/** The warning for one call: names the builtin, where it is called, and what differs. */
export function knownDifferenceWarning(call: KnownDifferenceCall): string {
  return (
    `${call.file}:${call.line}: ${call.builtin} behaves differently in the gateway than in ` +
    `opa test: ${KNOWN_DIFFERENCES[call.builtin]} (docs/policy.md, Builtins)`
  );
}

/** The .rego files `opa build` compiles from `dir`: tests and hidden entries are left out. */
async function policyModules(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries
    .filter((entry) => entry.endsWith('.rego') && !entry.endsWith('_test.rego'))
    .filter((entry) => !entry.split(path.sep).some((part) => part.startsWith('.')))
    .sort();
}

/**
 * The warnings (code `PC_BUILTIN_DIFFERS`) for each known-difference call in the policy
 * directory `dir`: the gateway logs them and records them in `policy_loaded`, `policy build`
 * prints them. A prebuilt bundle cannot be scanned: `opa build -t wasm` keeps only stubs of the
 * modules it compiled.
 */
export async function knownDifferenceWarnings(dir: string): Promise<string[]> {
  const warnings: string[] = [];
  for (const file of await policyModules(dir)) {
    const rego = await readFile(path.join(dir, file), 'utf8');
    for (const call of findKnownDifferenceCalls(file, rego)) warnings.push(knownDifferenceWarning(call));
  }
  return warnings;
}

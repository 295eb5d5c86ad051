/**
 * The capabilities file given to `opa build -t wasm --capabilities`: OPA's own declaration of
 * every builtin, cut down to the ones this engine can actually run. A policy that calls anything
 * else is rejected by the OPA compiler ("undefined function crypto.sha256") when it is built,
 * instead of failing with "not implemented" when a request first reaches that rule.
 *
 * What can run is the union of three lists: builtins the Wasm module implements itself, the few
 * that @open-policy-agent/opa-wasm supplies, and ours (builtins/).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { HOST_BUILTIN_NAMES } from './builtins';

const execFileAsync = promisify(execFile);

/**
 * Builtins compiled into the Wasm module: the keys of `builtinsFunctions` in OPA's
 * `internal/compiler/wasm/wasm.go`, OPA v1.21.1. Review on every OPA upgrade; a name OPA no
 * longer declares makes {@link buildCapabilities} throw.
 */
export const WASM_NATIVE_BUILTINS: readonly string[] = [
  'abs',
  'all',
  'and',
  'any',
  'array.concat',
  'array.flatten',
  'array.reverse',
  'array.slice',
  'base64.decode',
  'base64.encode',
  'base64.is_valid',
  'base64url.decode',
  'base64url.encode',
  'bits.and',
  'bits.lsh',
  'bits.negate',
  'bits.or',
  'bits.rsh',
  'bits.xor',
  'ceil',
  'concat',
  'contains',
  'count',
  'div',
  'endswith',
  'equal',
  'floor',
  'format_int',
  'glob.match',
  'graph.reachable',
  'gt',
  'gte',
  'indexof',
  'internal.member_2',
  'internal.member_3',
  'internal.template_string',
  'intersection',
  'is_array',
  'is_boolean',
  'is_null',
  'is_number',
  'is_object',
  'is_set',
  'is_string',
  'json.filter',
  'json.is_valid',
  'json.marshal',
  'json.remove',
  'json.unmarshal',
  'lower',
  'lt',
  'lte',
  'max',
  'min',
  'minus',
  'mul',
  'neq',
  'net.cidr_contains',
  'net.cidr_intersects',
  'net.cidr_overlap',
  'numbers.range',
  'object.filter',
  'object.get',
  'object.keys',
  'object.remove',
  'object.union',
  'object.union_n',
  'or',
  'plus',
  'product',
  're_match',
  'regex.find_all_string_submatch_n',
  'regex.is_valid',
  'regex.match',
  'rem',
  'replace',
  'round',
  'set_diff',
  'sort',
  'split',
  'startswith',
  'strings.replace_n',
  'strings.reverse',
  'substring',
  'sum',
  'to_number',
  'trim',
  'trim_left',
  'trim_prefix',
  'trim_right',
  'trim_space',
  'trim_suffix',
  'type_name',
  'union',
  'upper',
  'walk',
];

/**
 * Operators the compiler and planner consume before code generation, so they never reach the
 * module as calls: `=` (eq), `:=` (assign, rewritten to eq) and `print`, which `opa build`
 * erases from Wasm unless `--wasm-include-print` turns it into `internal.print`. That one is
 * deliberately absent, so the flag makes the build fail instead of every evaluation.
 */
export const COMPILER_BUILTINS: readonly string[] = ['eq', 'assign', 'print'];

/**
 * Supplied by @open-policy-agent/opa-wasm 1.10 (`src/builtins/`). The SDK also ships a
 * `json.is_valid`, but the module implements that one natively, so the SDK's is never called,
 * and a `sprintf` (sprintf-js), which builtins/ replaces with OPA's semantics. Its `regex.split`
 * uses JavaScript regular expressions, not RE2: close to OPA, not identical.
 */
export const SDK_BUILTINS: readonly string[] = ['regex.split', 'yaml.is_valid', 'yaml.marshal', 'yaml.unmarshal'];

/** Every builtin a policy may call: native, compiler-handled, SDK-supplied and ours. */
export const ENGINE_BUILTINS: readonly string[] = [...WASM_NATIVE_BUILTINS, ...COMPILER_BUILTINS, ...SDK_BUILTINS, ...HOST_BUILTIN_NAMES];

/** The shape of OPA's capabilities JSON, as far as we read it. */
export interface OpaCapabilities {
  builtins: Array<{ name: string; [field: string]: unknown }>;
  [field: string]: unknown;
}

/**
 * Restricts `opa capabilities --current` output to {@link ENGINE_BUILTINS}, keeping OPA's own
 * declaration (types, infix) of each and every other top-level field unchanged. Throws if OPA
 * does not declare one of our builtins: the lists above were written for another OPA version.
 */
export function buildCapabilities(opaCurrentCapabilities: object): OpaCapabilities {
  const current = opaCurrentCapabilities as Partial<OpaCapabilities>;
  if (!Array.isArray(current.builtins)) {
    throw new Error('capabilities: no "builtins" array; expected the output of `opa capabilities --current`');
  }
  const wanted = new Set(ENGINE_BUILTINS);
  const builtins = current.builtins.filter((b) => wanted.has(b?.name));
  const declared = new Set(builtins.map((b) => b.name));
  const missing = [...wanted].filter((name) => !declared.has(name));
  if (missing.length > 0) {
    throw new Error(
      `capabilities: this OPA does not declare ${missing.join(', ')}; the builtin lists in src/policy/capabilities.ts were written for OPA v1.21.1`,
    );
  }
  return { ...current, builtins };
}

/** Runs `<opaBinary> capabilities --current` and writes the restricted capabilities to `outPath`. */
export async function writeCapabilitiesFile(opaBinary: string, outPath: string): Promise<void> {
  const { stdout } = await execFileAsync(opaBinary, ['capabilities', '--current'], {
    maxBuffer: 16 * 1024 * 1024,
  });
  let current: object;
  try {
    current = JSON.parse(stdout) as object;
  } catch (err) {
    throw new Error(`capabilities: \`${opaBinary} capabilities --current\` did not print JSON`, { cause: err });
  }
  await writeFile(outPath, `${JSON.stringify(buildCapabilities(current), null, 2)}\n`);
}

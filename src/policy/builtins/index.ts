/**
 * Rego builtins that Portcullis supplies to policies compiled to WebAssembly.
 *
 * OPA's Wasm compiler implements about a hundred builtins inside the module; for any other
 * builtin a policy calls, the module calls out to the host (imports `opa_builtin0`…`opa_builtin4`),
 * and @open-policy-agent/opa-wasm looks the name up in its own small table first, then in the
 * `customBuiltins` passed to `loadPolicy`. This folder owns that second table, one family per
 * file: time.ts (the `time.*` family), jwt.ts (`io.jwt.decode`) and sprintf.ts (`sprintf`, in
 * place of the SDK's own, see sdk-defaults.ts), with the semantics of OPA v1.21.
 * capabilities.ts lists exactly these names, so a policy calling a builtin nobody implements
 * fails at `opa build`, not on a request.
 *
 * Calling convention, as implemented by opa-wasm 1.10 (`src/opa.js`):
 * - arguments arrive JSON-decoded: numbers are JS doubles, a Rego set arrives as an array;
 * - the return value is JSON-encoded back into the module, and `undefined` makes the call
 *   undefined (the rule body fails);
 * - a throw unwinds through the module and out of `evaluate()`, so the whole evaluation fails
 *   and the gateway denies. We throw {@link HostBuiltinError}, never strings.
 *
 * Nanosecond precision: OPA counts time in int64 nanoseconds; present-day values (~1.8e18) are
 * above 2^53, so a JS number holds them only to the nearest 256 ns. The SDK cannot carry more:
 * it decodes every argument with plain `JSON.parse` and encodes results with `JSON.stringify`,
 * which rejects BigInt. We read an incoming double back as the shortest decimal that round-trips
 * (`String(n)`), which is the decimal the module sent whenever it had at most 16 significant
 * digits, and return values the same way. Net effect: any timestamp that is a whole number of
 * microseconds (Date.now(), RFC 3339 strings with ≤ 6 fraction digits, `exp` claims) passes
 * through exactly; sub-microsecond digits may be off by up to 128 ns. All arithmetic in between
 * is on integers (BigInt or whole seconds).
 */
import type { HostBuiltin } from './args';
import { jwtBuiltins } from './jwt';
import { withdrawSdkDefaults } from './sdk-defaults';
import { stringBuiltins } from './sprintf';
import { timeBuiltins } from './time';

export { HostBuiltinError, type HostBuiltin } from './args';

/**
 * The host builtins, keyed by Rego name: pass as the third argument of opa-wasm's `loadPolicy`.
 * Each takes its operands already JSON-decoded, returns a JSON-encodable value and throws
 * {@link HostBuiltinError} on bad input, which fails the evaluation (the gateway denies).
 */
export const hostBuiltins: Readonly<Record<string, HostBuiltin>> = Object.freeze({
  ...timeBuiltins,
  ...jwtBuiltins,
  ...stringBuiltins,
});

/** SDK defaults that {@link hostBuiltins} replaces. */
const REPLACED_SDK_DEFAULTS: readonly string[] = ['sprintf'];

/**
 * {@link hostBuiltins}, made effective: withdraws the SDK's own versions of the builtins we
 * replace first. What the engine passes to `loadPolicy`; throws if the SDK changed shape.
 */
export function builtinsForLoadPolicy(): Readonly<Record<string, HostBuiltin>> {
  withdrawSdkDefaults(REPLACED_SDK_DEFAULTS);
  return hostBuiltins;
}

/** Names of {@link hostBuiltins}, for the capabilities file. */
export const HOST_BUILTIN_NAMES: readonly string[] = Object.freeze(Object.keys(hostBuiltins));

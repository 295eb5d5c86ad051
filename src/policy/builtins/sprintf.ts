/**
 * sprintf, with OPA's semantics (v1/topdown/strings.go) rather than the opa-wasm SDK's default
 * (sprintf-js, which prints an object as "[object Object]"). OPA converts each operand for Go's
 * fmt: an integer number to int64 (or *big.Int), any other number to float64, a string to a
 * string, anything else to its printed text; go-fmt.ts then formats as Go does.
 */
import { HostBuiltinError, stringArg, typeName, type HostBuiltin } from './args';
import { goSprintf, type GoArg } from './go-fmt';
import { regoText } from './rego-text';

const INT64_LIMIT = 2n ** 63n;

/** The operand as OPA hands it to Go's fmt. */
function goArg(value: unknown): GoArg {
  if (typeof value === 'string') return { type: 'string', value };
  if (typeof value !== 'number') return { type: 'string', value: regoText(value) };
  // From 1e21 on, JavaScript (and the module) write a double with an exponent: a float literal.
  if (!Number.isInteger(value) || Math.abs(value) >= 1e21) return { type: 'float64', value };
  const int = BigInt(value); // exact for the double; beyond 2^53 the module's digits are lost
  return { type: int >= -INT64_LIMIT && int < INT64_LIMIT ? 'int64' : '*big.Int', value: int };
}

function sprintf(format: unknown, values: unknown): string {
  const text = stringArg(format, 1, 'sprintf');
  if (!Array.isArray(values)) {
    throw new HostBuiltinError('sprintf', `operand 2 must be array but got ${typeName(values)}`);
  }
  return goSprintf(text, values.map(goArg));
}

/** The string host builtins, keyed by Rego name. */
export const stringBuiltins: Readonly<Record<string, HostBuiltin>> = {
  sprintf,
};

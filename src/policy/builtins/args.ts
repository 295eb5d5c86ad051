/**
 * What every host builtin shares: the error it throws and the checks of its operands, with
 * OPA's wording ("operand 1 must be string but got number").
 */

/** A host builtin: operands arrive JSON-decoded, the result goes back JSON-encoded. */
export type HostBuiltin = (...args: any[]) => unknown;

/** The error every host builtin throws; its message starts with the builtin's name. */
export class HostBuiltinError extends Error {
  /** The Rego builtin that failed, e.g. `io.jwt.decode`. */
  readonly builtin: string;

  constructor(builtin: string, message: string) {
    super(`${builtin}: ${message}`);
    this.name = 'HostBuiltinError';
    this.builtin = builtin;
  }
}

/** The operand if it is a string; otherwise a HostBuiltinError in OPA's words. */
export function stringArg(value: unknown, position: number, builtin: string): string {
  if (typeof value !== 'string') {
    throw new HostBuiltinError(builtin, `operand ${position} must be string but got ${typeName(value)}`);
  }
  return value;
}

/** The operand if it is a safe integer; otherwise a HostBuiltinError. */
export function intArg(value: unknown, position: number, builtin: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new HostBuiltinError(builtin, `operand ${position} must be an integer but got ${JSON.stringify(value)}`);
  }
  return value;
}

/** OPA's name for the JSON type of an operand, for error messages. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

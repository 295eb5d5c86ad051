/**
 * A value as OPA prints it (Go's `ast.Value.String()`), which is what OPA's sprintf formats for
 * any operand that is not a number or a string: `{"a": 1, "b": [true, null]}`, object keys in
 * sorted order, strings quoted the Go way.
 *
 * The value arrives JSON-decoded from the Wasm module, so two things are lost before we see it:
 * a set arrives as an array (printed `[1, 2]`, where OPA prints `{1, 2}`), and a number is a
 * double (a literal such as `1.0` prints as `1`). Both are listed in known-differences.ts.
 */
import { goQuote } from './go-quote';

/** Sorts strings by their UTF-8 bytes, as Go compares strings (not by UTF-16 units, as JS does). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The text OPA prints for a JSON-decoded Rego value. */
export function regoText(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return String(value);
    case 'number':
      return String(value);
    case 'string':
      return goQuote(value);
  }
  if (Array.isArray(value)) return `[${value.map(regoText).join(', ')}]`;
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object).sort(compareUtf8);
  return `{${keys.map((key) => `${goQuote(key)}: ${regoText(object[key])}`).join(', ')}}`;
}

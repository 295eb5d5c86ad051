/**
 * opa-wasm 1.10 looks a host builtin up in its own table first and in the `customBuiltins`
 * given to `loadPolicy` only after (`builtinFuncs[name] || customBuiltins[name]` in
 * `src/opa.js`), so a builtin the SDK ships cannot be replaced by passing another one. To put
 * OPA's semantics in place of an SDK default (sprintf-js for `sprintf`), we withdraw that entry
 * from the SDK's table, which is a plain module-level object.
 *
 * If an SDK upgrade moves the table or stops shipping the entry, {@link withdrawSdkDefaults}
 * throws, so the policy does not load (fail closed) instead of silently running the SDK's version.
 */
import path from 'node:path';

let withdrawn = false;

/** The SDK's own builtin table (`src/builtins/index.js`), which its package exports do not expose. */
function sdkTable(): Record<string, unknown> {
  const entry = require.resolve('@open-policy-agent/opa-wasm');
  return require(path.join(path.dirname(entry), 'builtins', 'index.js')) as Record<string, unknown>;
}

/**
 * Removes `names` from the SDK's table so that our implementations are the ones called.
 * Idempotent; throws if one of them is not in the table the first time.
 */
export function withdrawSdkDefaults(names: readonly string[]): void {
  if (withdrawn) return;
  const table = sdkTable();
  const absent = names.filter((name) => typeof table[name] !== 'function');
  if (absent.length > 0) {
    throw new Error(
      `@open-policy-agent/opa-wasm no longer ships ${absent.join(', ')} where ` +
        'src/policy/builtins/sdk-defaults.ts expects it; review how host builtins override the SDK',
    );
  }
  for (const name of names) delete table[name];
  withdrawn = true;
}

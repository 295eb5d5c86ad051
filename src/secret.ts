/**
 * Secret values. A Secret cannot print itself: String(), JSON.stringify, util.inspect and pino
 * all see `[REDACTED]`. Only code holding `revealSecret` (the injector, the response masker,
 * the audit sinks that authenticate to their receivers, the policy bundle client's token and
 * HMAC verification key, and the stdio launcher that puts a route's secrets into its child's
 * environment) can read the value. It sits at the bottom of the
 * layers (beside src/errors.ts) because config/ creates secrets and the injector reads them.
 */
import { inspect } from 'node:util';

const values = new WeakMap<Secret, string>();

/** A credential value that renders as `[REDACTED]` everywhere. */
export class Secret {
  /** Where the value came from, e.g. `env GITHUB_TOKEN` (safe to log). */
  readonly source: string;

  constructor(value: string, source: string) {
    values.set(this, value);
    this.source = source;
    Object.freeze(this);
  }

  toString(): string {
    return '[REDACTED]';
  }

  toJSON(): string {
    return '[REDACTED]';
  }

  [inspect.custom](): string {
    return '[REDACTED]';
  }
}

/**
 * A secret that was deliberately not read (a config loaded with `secrets: 'skip'`, for commands
 * that need only the policy and routes): it prints like any secret, and revealing it throws.
 */
export function unresolvedSecret(source: string): Secret {
  const secret = new Secret('', source);
  values.delete(secret);
  return secret;
}

/** Returns the secret's value. Import only where the value is used: the credential injector (and the masker of a stdio server's env secrets), the response masker, the audit sinks, the checkpoint signing key's parser (src/gateway.ts), the stdio launcher (src/mcp/stdio/launch.ts). */
export function revealSecret(secret: Secret): string {
  const value = values.get(secret);
  if (value === undefined) throw new Error(secret instanceof Secret ? `the secret from ${secret.source} was not loaded` : 'not a Secret');
  return value;
}

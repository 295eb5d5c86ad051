/**
 * Secret values. A Secret cannot print itself: String(), JSON.stringify, util.inspect and pino
 * all see `[REDACTED]`. Only code holding `revealSecret` (the injector, the response masker,
 * the audit sinks that authenticate to their receivers, and the stdio launcher that puts a
 * route's secrets into its child's environment) can read the value.
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

/** Returns the secret's value. Import only where the value is used: the credential injector (and the masker of a stdio server's env secrets), the response masker, the audit sinks, the checkpoint signer's key parser (config), the stdio launcher (src/mcp/stdio/launch.ts). */
export function revealSecret(secret: Secret): string {
  const value = values.get(secret);
  if (value === undefined) throw new Error('not a Secret');
  return value;
}

/** The policies a config names: the enforcing one and its shadows, resolved the same way. */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { ResolveContext } from './context';
import type { RawConfig } from './raw-config';
import type { PolicyConfig } from './types';

/** A policy's keys as written: `policy` (less its `shadow`), `policy.shadow`, `routes[].shadow_policy`. */
export type RawPolicy = Omit<RawConfig['policy'], 'shadow'>;

/** A policy's keys (`policy`, `policy.shadow`, `routes[].shadow_policy`), at key path `at`. */
export function policyConfigOf(ctx: ResolveContext, raw: RawPolicy, at: readonly (string | number)[]): PolicyConfig {
  const policyPath = path.resolve(ctx.baseDir, raw.path);
  let isDir = true;
  try {
    isDir = statSync(policyPath).isDirectory();
  } catch {
    ctx.fail('CONFIG_PATH', [...at, 'path'], `${policyPath} does not exist: expected a directory of .rego files or a bundle`);
  }
  return Object.freeze({
    path: policyPath,
    entrypoint: raw.entrypoint,
    watch: raw.watch ?? isDir,
    pollMs: raw.poll_ms,
    opa: raw.opa ? path.resolve(ctx.baseDir, raw.opa) : null,
    requireTests: raw.require_tests,
  });
}

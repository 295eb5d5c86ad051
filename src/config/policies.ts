/** The policies a config names: the enforcing one and its shadows, resolved the same way. */
import { createPublicKey } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import type { ResolveContext } from './context';
import type { RawConfig } from './raw-config';
import { tlsPem } from './tls-files';
import type { PolicyConfig, PolicySigningConfig } from './types';

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
    signing: raw.signing ? signingOf(ctx, raw.signing, [...at, 'signing'], isDir) : null,
  });
}

/** The key types each algorithm family verifies with. */
const KEY_TYPES: Readonly<Record<string, readonly string[]>> = { RS: ['rsa'], PS: ['rsa', 'rsa-pss'], ES: ['ec'] };

/** policy.signing: the key read and checked against its algorithm, at its key path. */
function signingOf(ctx: ResolveContext, raw: NonNullable<RawPolicy['signing']>, at: readonly (string | number)[], isDir: boolean): PolicySigningConfig {
  if (isDir)
    ctx.fail('CONFIG_CONFLICT', [...at], 'signing is for a bundle: policy.path names a directory (build and sign it with opa build -b --signing-key)', {
      key: true,
    });
  const keyAt = [...at, 'verification_key'];
  const hmac = raw.algorithm.startsWith('HS');
  const ref = raw.verification_key;
  let key: PolicySigningConfig['key'];
  if (hmac) {
    if (typeof ref === 'string')
      return ctx.fail(
        'CONFIG_VALUE',
        keyAt,
        `${raw.algorithm} verifies with a shared secret: give it as {env: NAME} or {file: PATH}, not a file name in clear`,
      );
    key = { secret: ctx.secrets.read(ref, keyAt) };
  } else {
    if (typeof ref !== 'string') return ctx.fail('CONFIG_VALUE', keyAt, `${raw.algorithm} verifies with a public key: give the path of its PEM file`);
    const pem = tlsPem(ctx, ref, keyAt);
    let type: string | undefined;
    try {
      type = createPublicKey(pem.text).asymmetricKeyType;
    } catch (err) {
      ctx.fail('CONFIG_VALUE', keyAt, `${pem.path} holds no usable public key (${(err as Error).message})`);
    }
    const allowed = KEY_TYPES[raw.algorithm.slice(0, 2)] ?? [];
    if (!type || !allowed.includes(type))
      ctx.fail('CONFIG_VALUE', keyAt, `${pem.path} is a ${type ?? 'unknown'} key; ${raw.algorithm} needs ${allowed.join(' or ')}`);
    key = { pem: pem.text, file: pem.path };
  }
  return Object.freeze({ algorithm: raw.algorithm, key, keyId: raw.key_id, scope: raw.scope ?? null, excludeFiles: Object.freeze([...raw.exclude_files]) });
}

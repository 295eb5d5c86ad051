/** The policies a config names: the enforcing one and its shadows, resolved the same way. */
import { createPublicKey } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import type { ResolveContext } from './context';
import type { RawConfig } from './raw-config';
import { tlsPem } from './tls-files';
import type { BundleServiceConfig, PolicyConfig, PolicySigningConfig } from './types';

/** A policy's keys as written: `policy` (less its `shadow`), `policy.shadow`, `routes[].shadow_policy`. */
export type RawPolicy = Omit<RawConfig['policy'], 'shadow'>;

/** A policy's keys (`policy`, `policy.shadow`, `routes[].shadow_policy`), at key path `at`. `auditPath`: the enforcing policy's (a bundle service's default persist_dir); null for a shadow. */
export function policyConfigOf(ctx: ResolveContext, raw: RawPolicy, at: readonly (string | number)[], auditPath: string | null = null): PolicyConfig {
  if (raw.bundle !== undefined) {
    if (auditPath === null)
      ctx.fail('CONFIG_CONFLICT', [...at, 'bundle'], 'a shadow policy is a path (a directory or a bundle file), not a bundle service', { key: true });
    if (raw.path !== undefined) ctx.fail('CONFIG_CONFLICT', [...at, 'path'], 'set either path or bundle (a bundle server), not both', { key: true });
    const bundle = bundleServiceOf(ctx, raw.bundle, [...at, 'bundle'], auditPath as string);
    return Object.freeze({
      // The last bundle put in force lives there (persisted-bundle.ts); nothing watches it.
      path: path.join(bundle.persistDir, 'bundle.tar.gz'),
      entrypoint: raw.entrypoint,
      watch: false,
      pollMs: raw.poll_ms,
      opa: raw.opa ? path.resolve(ctx.baseDir, raw.opa) : null,
      requireTests: raw.require_tests,
      signing: raw.signing ? signingOf(ctx, raw.signing, [...at, 'signing'], false) : null,
      bundle,
    });
  }
  if (raw.path === undefined)
    return ctx.fail('CONFIG_MISSING_KEY', [...at, 'path'], 'missing required key "path" (a policy directory or bundle file), or set bundle (a bundle server)');
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
    bundle: null,
  });
}

/** policy.bundle: the server, its auth and where the last good bundle is kept. */
function bundleServiceOf(ctx: ResolveContext, raw: NonNullable<RawPolicy['bundle']>, at: readonly (string | number)[], auditPath: string): BundleServiceConfig {
  let url: URL;
  try {
    url = new URL(raw.url);
  } catch {
    return ctx.fail('CONFIG_URL', [...at, 'url'], `${JSON.stringify(raw.url)} is not a URL`);
  }
  if (url.username || url.password) ctx.fail('CONFIG_URL', [...at, 'url'], 'the URL embeds credentials: use token', { key: true });
  if (raw.min_delay_seconds > raw.max_delay_seconds)
    ctx.fail(
      'CONFIG_RANGE',
      [...at, 'min_delay_seconds'],
      `min_delay_seconds (${raw.min_delay_seconds}) is above max_delay_seconds (${raw.max_delay_seconds})`,
    );
  const token = raw.token ? ctx.secrets.read(raw.token, [...at, 'token']) : null;
  if (token && url.protocol !== 'https:' && !/^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i.test(url.hostname))
    ctx.fail('CONFIG_CONFLICT', [...at, 'token'], 'a bearer token is sent only over https (or to a loopback address)');
  const t = raw.tls;
  if (t && (t.cert === undefined) !== (t.key === undefined)) ctx.fail('CONFIG_CONFLICT', [...at, 'tls', t.cert ? 'key' : 'cert'], 'cert and key go together');
  const pem = (file: string | undefined, key: string) => (file === undefined ? null : Buffer.from(tlsPem(ctx, file, [...at, 'tls', key]).text));
  return Object.freeze({
    url,
    minDelayS: raw.min_delay_seconds,
    maxDelayS: raw.max_delay_seconds,
    token,
    tls: t ? Object.freeze({ ca: pem(t.ca, 'ca'), cert: pem(t.cert, 'cert'), key: pem(t.key, 'key') }) : null,
    persistDir: raw.persist_dir ? path.resolve(ctx.baseDir, raw.persist_dir) : `${auditPath}.bundle`,
    timeoutMs: raw.timeout_ms,
    maxBytes: raw.max_bytes,
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

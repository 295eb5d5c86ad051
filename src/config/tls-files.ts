/**
 * The PEM files a TLS configuration names (the agent listener's tls:, an upstream mtls
 * credential), checked at load the same way: each file exists and is PEM, the key is the
 * certificate's, a CA bundle parses. Errors are located at the key naming the file.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { ResolveContext } from './context';
import { caCertificates } from './pem';
import type { KeyPath } from './source';

/** Reads one PEM file, refusing a missing or non-PEM file at its key. */
export function tlsPem(ctx: ResolveContext, file: string, at: KeyPath): { path: string; text: string } {
  const full = path.resolve(ctx.baseDir, file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (err) {
    return ctx.fail('CONFIG_PATH', at, `cannot read ${full} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN ')) ctx.fail('CONFIG_PATH', at, `${full} is not a PEM file`);
  return { path: full, text };
}

/** Refuses, at `keyAt`, a key that is not the certificate's. */
export function checkKeyPair(ctx: ResolveContext, cert: { path: string; text: string }, key: { path: string; text: string }, keyAt: KeyPath): void {
  try {
    createSecureContext({ cert: cert.text, key: key.text });
  } catch (err) {
    ctx.fail('CONFIG_PATH', keyAt, `${key.path} is not the private key of ${cert.path} (${(err as Error).message})`);
  }
}

/** Refuses, at `at`, a CA bundle Node would load without a usable certificate. */
export function checkCaBundle(ctx: ResolveContext, ca: { path: string; text: string }, at: KeyPath): void {
  try {
    caCertificates(ca.text);
  } catch (err) {
    ctx.fail('CONFIG_PATH', at, `${ca.path} holds no usable CA certificate (${(err as Error).message})`);
  }
}

/**
 * `type: mtls`: a client certificate (and optional CA pin) on the TLS connections to a route's
 * upstream (docs/credentials.md, Upstream mTLS). Nothing travels in the request: the
 * attachment's apply is a no-op, and the route's HttpUpstream connects with `tls.current()`.
 * The files are watched (src/config/file-watch.ts); a changed set that makes a TLS context is
 * handed to the upstream for new connections and recorded as credential_rotated, a set that
 * does not (a key that is not the certificate's, a CA bundle that does not parse) keeps the one
 * in use, logged and counted as a failure.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { fileSetDigest, watchFileSet } from '../config/file-watch';
import { caCertificates } from '../config/pem';
import type { MtlsCredential } from '../config/types';
import type { BrokerContext } from './broker-context';
import type { ResponseSecrets } from './injector';
import { ResponseMasker } from './masker';
import type { Attachment, CredentialHealth, CredentialProvider, UpstreamTls } from './provider';

interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
}

/** What the attachment's fingerprint is keyed over: the SHA-256 of the leaf certificate's DER. */
function certDigest(certPem: string): string {
  return `sha256:${createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex')}`;
}

/** Throws when the set cannot make a TLS context (or its CA pin would be skipped by Node). */
function checkSet(f: TlsFiles): void {
  createSecureContext({ cert: f.cert, key: f.key, ...(f.ca !== null ? { ca: f.ca } : {}) });
  if (f.ca !== null) caCertificates(f.ca);
  new X509Certificate(f.cert);
}

/** A provider for an upstream client certificate. */
export function mtlsProvider(credential: MtlsCredential, broker: BrokerContext): CredentialProvider {
  const paths = [credential.certFile, credential.keyFile, ...(credential.caFile !== null ? [credential.caFile] : [])];
  const read = (): string[] => paths.map((p) => readFileSync(p, 'utf8'));
  const first = read();
  let current: TlsFiles = Object.freeze({ cert: first[0], key: first[1], ca: first[2] ?? null });
  checkSet(current);
  let digest = certDigest(current.cert);
  // The key, should an upstream echo it, is masked like any secret.
  let secrets: ResponseSecrets = Object.freeze({ name: credential.name, masker: new ResponseMasker([current.key.trim()]) });
  let attachment: Attachment | null = null;
  const listeners = new Set<() => void>();
  let cacheHits = 0;
  let fetches = 1;
  let failures = 0;
  let lastError: string | null = null;
  const fail = (problem: string) => {
    failures++;
    lastError = `${problem}; the certificate in use is kept`;
    broker.log.error({ credential: credential.name, files: paths }, `credential ${credential.name}: ${lastError}`);
  };

  const watch = watchFileSet(
    { files: paths, pollMs: credential.reloadPollMs, initial: fileSetDigest(first) },
    {
      changed([cert, key, ca]) {
        fetches++;
        const next: TlsFiles = Object.freeze({ cert, key, ca: ca ?? null });
        try {
          checkSet(next);
        } catch (err) {
          fail(`the changed files are not usable (${(err as Error).message})`);
          return false;
        }
        const previous = digest;
        current = next;
        digest = certDigest(cert);
        secrets = Object.freeze({ name: credential.name, masker: new ResponseMasker([key.trim()]) });
        attachment = null;
        lastError = null;
        for (const l of listeners) l();
        if (digest !== previous) broker.rotated({ credential: credential.name, type: 'mtls', value: digest, previous, graceS: null });
        broker.log.info(
          { credential: credential.name, files: paths },
          `credential ${credential.name}: the client certificate files changed; new connections use them`,
        );
        return true;
      },
      unreadable: (err) => fail(`a file cannot be read (${err.code ?? 'error'})`),
    },
  );

  const tls: UpstreamTls = {
    current: () => current,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return {
    name: credential.name,
    type: 'mtls',
    needsCaller: false,
    tls,
    obtain(call) {
      if (call.scopes !== null) throw broker.cannotGrant(credential.name, 'it is a client certificate with no scopes');
      cacheHits++;
      attachment ??= Object.freeze({ apply: () => undefined, scopes: null, fingerprint: broker.fingerprint(digest), secrets });
      return attachment;
    },
    secrets: () => secrets,
    health: (): CredentialHealth => ({
      name: credential.name,
      type: 'mtls',
      ok: true,
      fetches,
      cacheHits,
      failures,
      expiresInS: Math.max(0, Math.floor((Date.parse(new X509Certificate(current.cert).validTo) - Date.now()) / 1000)),
      lastError,
    }),
    close() {
      watch.close();
      listeners.clear();
    },
  };
}

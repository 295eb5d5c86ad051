/**
 * The agent listener's TLS files (tls: in portcullis.yaml, docs/identity.md): the options its
 * TLS server starts with, and a watch that applies changed files with server.setSecureContext.
 * The files are watched by src/config/file-watch.ts (their directories, so a file replaced by
 * rename is seen, and a poll every `reload_poll_ms`); only a change of their content counts. A new
 * set that does not make a context (a key that is not the certificate's, a broken CA bundle)
 * keeps the old one and is logged as an error. Connections already open keep their handshake.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { fileSetDigest, watchFileSet } from '../config/file-watch';
import { caCertificates } from '../config/pem';
import type { AgentTlsConfig } from '../config/types';

/** Where the watch reports. */
export interface TlsLog {
  info(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

interface Files {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
}

function readFiles(cfg: AgentTlsConfig): Files {
  return {
    cert: readFileSync(cfg.certFile, 'utf8'),
    key: readFileSync(cfg.keyFile, 'utf8'),
    ca: cfg.clientCaFile === null ? null : readFileSync(cfg.clientCaFile, 'utf8'),
  };
}

function contextOptions(f: Files): tls.SecureContextOptions {
  return { cert: f.cert, key: f.key, ...(f.ca !== null ? { ca: f.ca } : {}), minVersion: 'TLSv1.2' };
}

/** The options of the agent listener's TLS server, from the files as they are now. */
export function agentTlsOptions(cfg: AgentTlsConfig): tls.TlsOptions {
  const asks = cfg.clientCaFile !== null;
  return { ...contextOptions(readFiles(cfg)), requestCert: asks, rejectUnauthorized: asks && cfg.clientAuth === 'required' };
}

/** Watches the files (src/config/file-watch.ts) and applies a changed, valid set to `server`; returns the stop function. */
export function watchAgentTls(cfg: AgentTlsConfig, server: tls.Server, log: TlsLog): () => void {
  const files = [cfg.certFile, cfg.keyFile, ...(cfg.clientCaFile !== null ? [cfg.clientCaFile] : [])];
  const initial = readFiles(cfg);
  const watch = watchFileSet(
    { files, pollMs: cfg.reloadPollMs, initial: fileSetDigest([initial.cert, initial.key, ...(initial.ca !== null ? [initial.ca] : [])]) },
    {
      changed([cert, key, ca]) {
        const f: Files = { cert, key, ca: ca ?? null };
        try {
          const options = contextOptions(f);
          tls.createSecureContext(options); // throws for a key that is not the certificate's, a broken PEM
          if (f.ca !== null) caCertificates(f.ca); // Node would skip a CA it cannot parse
          server.setSecureContext(options);
          log.info({ files }, 'the agent listener TLS files changed; new connections use them');
          return true;
        } catch (err) {
          log.error({ files, err: (err as Error).message }, 'the changed TLS files of the agent listener are not usable; keeping the certificates in use');
          return false;
        }
      },
      // Mid-replacement, or removed: keep the old context; the next change or poll tries again.
      unreadable: (err) => log.error({ err: err.message }, 'a TLS file of the agent listener cannot be read; keeping the certificates in use'),
    },
  );
  return () => watch.close();
}

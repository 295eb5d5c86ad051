/**
 * The agent listener's TLS files (tls: in portcullis.yaml, docs/identity.md): the options its
 * TLS server starts with, and a watch that applies changed files with server.setSecureContext.
 * The files are watched (fs.watch on their directories, so a file replaced by rename is seen)
 * and checked every `reload_poll_ms` as a backstop; only a change of their content counts. A new
 * set that does not make a context (a key that is not the certificate's, a broken CA bundle)
 * keeps the old one and is logged as an error. Connections already open keep their handshake.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
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

function digest(f: Files): string {
  return createHash('sha256')
    .update(JSON.stringify([f.cert, f.key, f.ca]))
    .digest('hex');
}

/** The options of the agent listener's TLS server, from the files as they are now. */
export function agentTlsOptions(cfg: AgentTlsConfig): tls.TlsOptions {
  const asks = cfg.clientCaFile !== null;
  return { ...contextOptions(readFiles(cfg)), requestCert: asks, rejectUnauthorized: asks && cfg.clientAuth === 'required' };
}

/** Watches the files and applies a changed, valid set to `server`; returns the stop function. */
export function watchAgentTls(cfg: AgentTlsConfig, server: tls.Server, log: TlsLog): () => void {
  const files = [cfg.certFile, cfg.keyFile, ...(cfg.clientCaFile !== null ? [cfg.clientCaFile] : [])];
  let current = digest(readFiles(cfg));
  let refused: string | null = null;
  const check = () => {
    let f: Files;
    try {
      f = readFiles(cfg);
    } catch (err) {
      // Mid-replacement, or removed: keep the old context; the next change or poll tries again.
      const key = `read:${(err as NodeJS.ErrnoException).code}`;
      if (refused !== key) log.error({ err: (err as Error).message }, 'a TLS file of the agent listener cannot be read; keeping the certificates in use');
      refused = key;
      return;
    }
    const d = digest(f);
    if (d === current || d === refused) return;
    try {
      const options = contextOptions(f);
      tls.createSecureContext(options); // throws for a key that is not the certificate's, a broken PEM
      if (f.ca !== null) caCertificates(f.ca); // Node would skip a CA it cannot parse
      server.setSecureContext(options);
      current = d;
      refused = null;
      log.info({ files }, 'the agent listener TLS files changed; new connections use them');
    } catch (err) {
      refused = d;
      log.error({ files, err: (err as Error).message }, 'the changed TLS files of the agent listener are not usable; keeping the certificates in use');
    }
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(files.map((f) => path.dirname(f)))) {
    try {
      const w = watch(dir, { persistent: false }, () => check());
      w.on('error', () => undefined);
      watchers.push(w);
    } catch {
      /* the poll still applies changes */
    }
  }
  const poll = setInterval(check, cfg.reloadPollMs);
  poll.unref();
  return () => {
    clearInterval(poll);
    for (const w of watchers) w.close();
  };
}

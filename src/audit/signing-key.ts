/**
 * The checkpoint signing key when none is configured: read from `<audit dir>.key`, or generated
 * there on first start (mode 0600, never overwritten). The file sits beside the audit directory,
 * not in it, so copying or shipping the trail never carries the private key.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { AuditWriteError } from './segments';
import { generateSignerKey, parseSignerKey, type NoteSigner } from './signed-note';

/** Default key name: stable for the key's life, since it is stored in the key itself. */
function defaultKeyName(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '-') || 'localhost';
  return `portcullis-audit/${host}`;
}

/** What to do about a default key file that cannot be read or created. */
const REMEDY =
  "audit.signing_key is not set, so the key is kept beside audit.path; set audit.signing_key to a key file made with 'portcullis audit keygen' (on a read-only root, mount it from a Secret), or make that directory writable and persistent";

/** Loads the signer from `file`, creating it when absent. `generated` tells which happened. */
export function loadOrCreateSigner(file: string): { signer: NoteSigner; generated: boolean } {
  let text: string | null = null;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new AuditWriteError(`cannot read the audit signing key ${file} (${(err as NodeJS.ErrnoException).code}): ${REMEDY}`);
  }
  if (text !== null) {
    try {
      return { signer: parseSignerKey(text), generated: false };
    } catch (err) {
      throw new AuditWriteError(`the audit signing key ${file} is unusable: ${(err as Error).message}`);
    }
  }
  const key = generateSignerKey(defaultKeyName());
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
    writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new AuditWriteError(`cannot create the audit signing key ${file} (${(err as NodeJS.ErrnoException).code}): ${REMEDY}`);
  }
  return { signer: parseSignerKey(key), generated: true };
}

/**
 * The highest policy bundle serial accepted before (docs/policy-lifecycle.md, "Order"): the
 * `serial` and `bundle_sha256` of the newest `policy_loaded` record that carries a serial. The
 * store reads it at start-up, so a restart cannot be rolled back to an older signed bundle
 * either. It lives beside the writer's segment code, not in offline/, because the gateway runs
 * it (offline/ is only for the CLI).
 *
 * Segments are read newest first and each from its end, in chunks, stopping at the first match:
 * the cost is what follows the last policy load, not the trail. As every reader, it finds a
 * segment's end by content (segments.ts): the newest may end in a zero-filled preallocated tail,
 * and bytes after the last newline are a write in progress, never a record.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { contentLength, listSegments } from './segments';

/** The floor a new bundle's serial is compared with. */
export interface AcceptedSerial {
  readonly serial: number;
  /** The SHA-256 (hex) of that bundle's bytes, or null when the record has none. */
  readonly bundleSha256: string | null;
}

const NEEDLE = Buffer.from('"policy_loaded"');
const CHUNK = 1 << 20;

/** The newest accepted serial in the trail in `auditDir`, or null (no trail, or no serial yet). */
export function highestAcceptedSerial(auditDir: string): AcceptedSerial | null {
  let files: string[];
  try {
    files = listSegments(auditDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  for (const file of files.reverse()) {
    const found = newestInSegment(path.join(auditDir, file));
    if (found) return found;
  }
  return null;
}

function fromLine(line: Buffer): AcceptedSerial | null {
  if (line.indexOf(NEEDLE) === -1) return null;
  let rec: unknown;
  try {
    rec = JSON.parse(line.toString('utf8'));
  } catch {
    return null; // unreadable lines are `audit verify`'s to report
  }
  if (!rec || typeof rec !== 'object') return null;
  const { type, serial, bundle_sha256, shadow } = rec as Record<string, unknown>;
  // A shadow policy's bundles have an order of their own: they never set the enforcing floor.
  if (type !== 'policy_loaded' || shadow === true || typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 0) return null;
  return { serial, bundleSha256: typeof bundle_sha256 === 'string' ? bundle_sha256 : null };
}

/** Scans one segment's complete lines from the last to the first. */
function newestInSegment(file: string): AcceptedSerial | null {
  const fd = openSync(file, 'r');
  try {
    let pos = contentLength(fd);
    let rest: Buffer = Buffer.alloc(0); // from a line's start up to (not including) the next line's '\n'
    let seenEnd = false; // the bytes after the last '\n' are not a record
    while (pos > 0) {
      const len = Math.min(CHUNK, pos);
      pos -= len;
      const chunk = Buffer.allocUnsafe(len);
      readSync(fd, chunk, 0, len, pos);
      let buf = Buffer.concat([chunk, rest]);
      if (!seenEnd) {
        const nl = buf.lastIndexOf(0x0a);
        if (nl === -1) {
          rest = buf;
          continue;
        }
        buf = buf.subarray(0, nl);
        seenEnd = true;
      }
      let end = buf.length;
      while (end > 0) {
        const nl = buf.lastIndexOf(0x0a, end - 1);
        if (nl === -1) break;
        const found = fromLine(buf.subarray(nl + 1, end));
        if (found) return found;
        end = nl;
      }
      rest = Buffer.from(buf.subarray(0, end));
    }
    return seenEnd ? fromLine(rest) : null;
  } finally {
    closeSync(fd);
  }
}

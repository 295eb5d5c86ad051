/**
 * Opening the trail: take the directory's lock, scan the segments to rebuild the chain state,
 * keep a torn tail aside, publish the verifier key, and record what happened since the last
 * writer (a takeover, a torn tail, a new signing key) before the first call is let in.
 */
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createFileDurably } from '../durable-file';
import { AuditWriteError, scanTrail, segmentName } from '../segments';
import { abandonLock, acquireLock } from '../writer-lock';
import type { AuditWriterOptions } from './audit-log';
import type { ChainState } from './chain-state';
import { JsonlAuditWriter } from './group-commit';

/** The file beside the segments listing the verifier keys that signed the trail. */
export const PUBLIC_KEY_FILE = 'audit.pub';

/** Opens (or creates) the trail in `dir` and returns its writer. */
export async function openAuditWriter(options: AuditWriterOptions): Promise<JsonlAuditWriter> {
  await fsp.mkdir(options.dir, { recursive: true, mode: 0o750 });
  const lock = await acquireLock(options.dir, { waitMs: options.lockWaitMs });
  try {
    const scan = scanTrail(options.dir);
    const aside = `${path.join(options.dir, segmentName(scan.segment))}.torn-${Date.now()}`;
    // Never delete evidence: keep the torn bytes beside the segment. They are cut off by the
    // first write, which opens the segment at its last complete line, together with the
    // recovered_torn_tail record: a crash before then leaves them in place for the next start,
    // so no aside copy exists without a record of its bytes being removed.
    if (scan.tornBytes) await createFileDurably(aside, scan.tornBytes);
    const ageMs = scan.segmentStartedAt ? Math.max(0, Date.now() - Date.parse(scan.segmentStartedAt)) : 0;
    const state: ChainState = {
      seq: scan.seq,
      hash: scan.hash,
      frontier: scan.frontier,
      segment: scan.segment,
      segmentBytes: scan.segmentBytes,
      segmentHash: scan.segmentHash,
      segmentOpenedAt: performance.now() - (Number.isFinite(ageMs) ? ageMs : 0),
      previous: scan.previous,
      lastCheckpointSeq: scan.lastCheckpointSeq,
    };
    await publishVerifierKey(options.dir, options.signer.verifierKey);
    const writer = new JsonlAuditWriter(options, lock, state);
    const time = writer.clock().toISOString();
    const record = (event: Parameters<JsonlAuditWriter['append']>[0]) => void writer.append(event).catch(() => undefined);
    // The previous writer died holding the lock: the kernel released it; the trail says so.
    if (lock.stale)
      record({ type: 'writer_takeover', time, previous: { ...lock.stale }, epoch: lock.holder.epoch, pid: process.pid, waited_ms: lock.waitedMs });
    if (scan.tornBytes) record({ type: 'recovered_torn_tail', time, moved_to: path.basename(aside), bytes: scan.tornBytes.length });
    if (scan.lastKeyId !== options.signer.keyId) {
      record({ type: 'signing_key', time, key_id: options.signer.keyId, public_key: options.signer.verifierKey, previous_key_id: scan.lastKeyId });
    }
    await writer.settle();
    if (!writer.healthy) {
      writer.startFailed = true;
      await writer.close();
      throw new AuditWriteError(`cannot write to the audit trail in ${options.dir}; refusing to start`);
    }
    return writer;
  } catch (err) {
    abandonLock(lock);
    throw err;
  }
}

/** Adds the verifier key to audit.pub (one key per line) unless it is there already. */
async function publishVerifierKey(dir: string, verifierKey: string): Promise<void> {
  const file = path.join(dir, PUBLIC_KEY_FILE);
  const known = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  if (!known.includes(verifierKey)) await fsp.appendFile(file, `${verifierKey}\n`, { mode: 0o644 });
}

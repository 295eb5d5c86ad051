/**
 * Checkpoints: the signed-note record over the Merkle root of every record before it, and the
 * `checkpoint` file beside the segments that holds the newest one for shipping off the machine.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { AuditEvent } from '../record';
import { checkpointBody, type NoteSigner } from '../signed-note';
import type { ChainState } from './chain-state';

/** The file beside the segments holding the newest signed checkpoint. */
export const CHECKPOINT_FILE = 'checkpoint';

/** The checkpoint record over every record in `s`, and its signed note. */
export function checkpointEvent(signer: NoteSigner, s: ChainState, time: string): { event: AuditEvent; note: string } {
  const root = s.frontier.root();
  const note = signer.sign(checkpointBody(signer.name, s.seq, root));
  const frontier = s.frontier.hashes().map((h) => h.toString('base64'));
  return { note, event: { type: 'checkpoint', time, size: s.seq, root: root.toString('base64'), key_id: signer.keyId, note, frontier } };
}

/** Replaces the checkpoint file with `note`: write a temporary file, sync, rename, sync the directory. */
export async function writeCheckpointFile(dir: string, note: string): Promise<void> {
  const target = path.join(dir, CHECKPOINT_FILE);
  const tmp = `${target}.tmp`;
  const handle = await fsp.open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(note);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await fsp.rename(tmp, target);
  const dirHandle = await fsp.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

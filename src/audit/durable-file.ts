/**
 * Small files beside the trail that must survive a crash whole: written to a temporary file,
 * synced, renamed over the old one and the directory synced, so a reader finds the old content
 * or the new, never a torn mix (the checkpoint file, the sinks' offsets).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';

/** Replaces `file` with `content` atomically and durably. */
export async function replaceFileDurably(file: string, content: string | Buffer, mode = 0o640): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeAndSync(tmp, content, 'w', mode);
  await fsp.rename(tmp, file);
  const dir = await fsp.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Creates `file`, which must not exist yet, holding `content`, synced. */
export async function createFileDurably(file: string, content: string | Buffer, mode = 0o640): Promise<void> {
  await writeAndSync(file, content, 'wx', mode);
}

async function writeAndSync(file: string, content: string | Buffer, flags: 'w' | 'wx', mode: number): Promise<void> {
  const handle = await fsp.open(file, flags, mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

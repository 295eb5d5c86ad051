/**
 * Reads an audit trail line by line, fast: the segments of a directory in order (or one file),
 * in large chunks, split on `\n`. A line is only complete once its `\n` is on disk, so the bytes
 * after the last `\n` of a segment (a write in progress, or a torn tail) are never returned, and
 * neither is the run of NUL bytes a strict writer keeps ahead of its records in the newest
 * segment (its preallocation): a file's content ends at its last byte that is not NUL. NUL bytes
 * before that are content, and the line holding them is unreadable (`audit verify` reports it).
 *
 * Readers that know what they look for pass `anyOf` needles: a line that contains none of them
 * is skipped before it is decoded further or parsed, which is what makes a selective query over
 * a million records cheap. Needles are a prefilter only; callers re-check parsed records.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { contentLength, listSegments } from '../segments';

/** One complete line of a segment. */
export interface TrailLine {
  /** The segment file. */
  readonly file: string;
  /** 1-based line number within the segment. */
  readonly line: number;
  /** The line's text, without its `\n`. */
  readonly text: string;
  /** Bytes of the file read so far (to the end of the chunk holding this line): for progress. */
  readonly read: number;
}

/** Options of readTrail. */
export interface ReadTrailOptions {
  /** Keep only lines containing at least one of these substrings (a prefilter). */
  readonly anyOf?: readonly string[];
  /** Bytes read per system call. Default 4 MiB. */
  readonly chunkBytes?: number;
}

/** The segment files of a trail directory in order, or the file itself. */
export function trailFiles(target: string): string[] {
  if (!statSync(target).isDirectory()) return [target];
  return listSegments(target).map((f) => path.join(target, f));
}

/** Yields the complete lines of a trail, in order. */
export function* readTrail(target: string, options: ReadTrailOptions = {}): Generator<TrailLine> {
  const needles = options.anyOf && options.anyOf.length > 0 ? options.anyOf : null;
  const size = options.chunkBytes ?? 4 * 1024 * 1024;
  for (const file of trailFiles(target)) {
    const fd = openSync(file, 'r');
    try {
      let buf = Buffer.allocUnsafe(size);
      let filled = 0; // bytes in buf not yet consumed
      let lineNo = 0;
      let left = contentLength(fd);
      let read = 0;
      for (;;) {
        if (filled === buf.length) {
          // One line longer than the buffer: grow it.
          const bigger = Buffer.allocUnsafe(buf.length * 2);
          buf.copy(bigger, 0, 0, filled);
          buf = bigger;
        }
        const n = left === 0 ? 0 : readSync(fd, buf, filled, Math.min(buf.length - filled, left), null);
        if (n === 0) break; // whatever is left has no `\n`: incomplete, not returned
        filled += n;
        left -= n;
        read += n;
        const lastNl = buf.lastIndexOf(0x0a, filled - 1);
        if (lastNl === -1) continue;
        // Decode only whole lines: a multi-byte character never straddles a `\n`.
        const text = buf.toString('utf8', 0, lastNl);
        // Each needle's next occurrence in the chunk; every needle is searched forward only, so
        // a needle found in no line costs one pass over the chunk, not one per line.
        const nextAt = needles === null ? null : needles.map(() => -1);
        let start = 0;
        for (;;) {
          const nl = text.indexOf('\n', start);
          const end = nl === -1 ? text.length : nl;
          lineNo++;
          if (nextAt === null || lineHasNeedle(text, start, end, needles!, nextAt)) {
            yield { file, line: lineNo, text: text.slice(start, end), read };
          }
          if (nl === -1) break;
          start = nl + 1;
        }
        buf.copy(buf, 0, lastNl + 1, filled);
        filled -= lastNl + 1;
      }
    } finally {
      closeSync(fd);
    }
  }
}

function lineHasNeedle(text: string, start: number, end: number, needles: readonly string[], nextAt: number[]): boolean {
  for (let i = 0; i < needles.length; i++) {
    let at = nextAt[i];
    if (at !== Infinity && at < start) {
      at = text.indexOf(needles[i], start);
      nextAt[i] = at = at === -1 ? Infinity : at;
    }
    if (at < end) return true;
  }
  return false;
}

/**
 * Offline verification of an audit trail: needs only the segment files and the public key.
 * Shares no code with the writer beyond the two pure formats (merkle.ts, signed-note.ts), so a
 * bug in the writer's bookkeeping is not mirrored here. Checks, across segments in order:
 *
 * - segments are numbered 1, 2, 3… with none missing, and each after the first opens with a
 *   `segment_start` naming the previous file, its last seq and hash, and its SHA-256;
 * - every line is JSON, `seq` runs without gap, duplicate or reordering, and each `prev` is the
 *   SHA-256 of the previous line's exact bytes;
 * - every `checkpoint` record is signed by a trusted key and its root is the RFC 6962 Merkle root
 *   of all records before it (so a chain rebuilt after an edit is caught even though its hashes
 *   link up: the attacker cannot re-sign);
 * - each external checkpoint (a copy kept elsewhere, and the `checkpoint` file beside the trail)
 *   is signed by a trusted key and matches the trail's first `size` records: fewer records
 *   means a truncated or rolled-back trail.
 *
 * After a chain break (a deleted, edited, duplicated or unreadable line) checking resumes on the
 * next record's seq and prev, and the Merkle tree on the next checkpoint's signed frontier, so
 * one damaged line is reported as one problem ("chain break at seq N"), not once per later record.
 *
 * The newest segment of a running (or crashed) strict writer ends in NUL bytes: zeros written
 * ahead of its records so that a sync flushes data only. That zero tail is not content. Zeros
 * anywhere else (before a later record, or at the end of a finished segment) are tampering.
 *
 * Verdict: `tampered` when any check fails; else `unverifiable` when something could not be
 * checked (no key, or records after the last signed checkpoint); else `verified`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { leafHash, MerkleFrontier } from '../merkle';
import { parseCheckpointBody, parseNote, parseVerifierKey, verifyNote, type NoteVerifier } from '../signed-note';

/** One problem found, located by file and line (and seq when readable). */
export interface VerifyProblem {
  readonly file: string;
  readonly line: number;
  readonly seq: number | null;
  readonly problem: string;
}

/** The verdict and what it rests on. */
export interface VerifyReport {
  readonly verdict: 'verified' | 'tampered' | 'unverifiable';
  readonly files: readonly string[];
  readonly records: number;
  readonly lastSeq: number;
  /** Signed checkpoints found in the trail, and the seq up to which signatures cover it. */
  readonly checkpoints: number;
  readonly coveredSeq: number;
  /** Keys that checked signatures, as name+id, and where they came from. */
  readonly keys: readonly string[];
  readonly problems: readonly VerifyProblem[];
  /** Why the trail could not be fully verified (exit 2 when there is no problem). */
  readonly unverifiable: readonly string[];
  /** Facts worth knowing that are not evidence of tampering (e.g. the clock stepping back). */
  readonly warnings: readonly string[];
}

/** What to verify against. */
export interface VerifyOptions {
  /** Trusted verifier keys (text form). Without them, audit.pub beside the trail is used. */
  readonly keys?: readonly string[];
  /** Signed checkpoints kept elsewhere: [label, note text]. */
  readonly checkpoints?: readonly (readonly [string, string])[];
  /** The trail is being written (a running gateway's): bytes after the newest segment's last newline are a write in progress, not a torn line. */
  readonly live?: boolean;
  /** Called as each segment is started: how many of how many, and the records checked so far (for a progress display). */
  readonly onProgress?: (p: { readonly done: number; readonly total: number; readonly records: number }) => void;
}

const SEGMENT = /^audit-(\d{8})\.jsonl$/;
const GENESIS = '0'.repeat(64);
const MAX_WARNINGS = 20;
/** A checkpoint record's fields: all but `time` are fixed by the signed note and the records before it. */
const CHECKPOINT_FIELDS = new Set(['seq', 'prev', 'type', 'time', 'size', 'root', 'key_id', 'note', 'frontier']);

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

interface ExternalCheckpoint {
  readonly label: string;
  readonly size: number;
  readonly root: Buffer;
}

/** Verifies a trail directory (or a single segment file). Throws only when it cannot be read. */
export function verifyTrail(target: string, options: VerifyOptions = {}): VerifyReport {
  const isDir = statSync(target).isDirectory();
  const dir = isDir ? target : null;
  const files = isDir
    ? readdirSync(target)
        .filter((f) => SEGMENT.test(f))
        .sort()
        .map((f) => path.join(target, f))
    : [target];
  const problems: VerifyProblem[] = [];
  const unverifiable: string[] = [];
  const warnings: string[] = [];
  const warn = (text: string) => {
    if (warnings.length < MAX_WARNINGS) warnings.push(text);
  };

  // Trusted keys: the auditor's, else the ones published beside the trail (weaker, and said so).
  let keyTexts = options.keys ?? [];
  if (keyTexts.length === 0 && dir && existsSync(path.join(dir, 'audit.pub'))) {
    keyTexts = readFileSync(path.join(dir, 'audit.pub'), 'utf8')
      .split('\n')
      .filter((l) => l.trim());
    warn(`trusting the key(s) in ${path.join(dir, 'audit.pub')}; pass --key with a copy kept elsewhere, or a rebuilt and re-signed trail would verify`);
  }
  const keys: NoteVerifier[] = keyTexts.map((k) => parseVerifierKey(k));
  if (keys.length === 0) unverifiable.push('no public key: checkpoint signatures were not checked (pass --key)');

  // External checkpoints: the auditor's copies, and the newest one the writer left beside the trail.
  const externalNotes = [...(options.checkpoints ?? [])];
  if (dir && existsSync(path.join(dir, 'checkpoint'))) externalNotes.push([path.join(dir, 'checkpoint'), readFileSync(path.join(dir, 'checkpoint'), 'utf8')]);
  const external: ExternalCheckpoint[] = [];
  for (const [label, text] of externalNotes) {
    try {
      const note = parseNote(text);
      const body = parseCheckpointBody(note.text);
      if (keys.length > 0 && !verifyNote(note, keys)) {
        problems.push({ file: label, line: 0, seq: null, problem: 'the checkpoint is not signed by any trusted key (wrong key or forged)' });
        continue;
      }
      external.push({ label, size: body.size, root: body.root });
    } catch (err) {
      problems.push({ file: label, line: 0, seq: null, problem: `the checkpoint is invalid: ${(err as Error).message}` });
    }
  }
  const wantedRoots = new Map<number, Buffer>();

  // Segment numbering: 1, 2, 3… with none missing. Missing leading segments may have been
  // pruned on purpose: what they held cannot be checked, which is not proof of tampering.
  if (isDir && files.length > 0) {
    let expected = 1;
    files.forEach((file, index) => {
      const n = Number(SEGMENT.exec(path.basename(file))?.[1]);
      if (index === 0 && n > 1)
        unverifiable.push(
          `segments audit-00000001.jsonl..${path.basename(file).replace(/\d{8}/, String(n - 1).padStart(8, '0'))} are not here (pruned or deleted): the records in them cannot be checked`,
        );
      else {
        for (; expected < n; expected++) {
          const name = `audit-${String(expected).padStart(8, '0')}.jsonl`;
          problems.push({ file: path.join(target, name), line: 0, seq: null, problem: 'segment missing (deleted or renamed)' });
        }
      }
      expected = n + 1;
    });
  }
  if (files.length === 0) unverifiable.push('no audit segments here');

  // A single segment, or a directory whose first segments were pruned, starts after seq 1; a
  // directory that has segment 1 must start at seq 1.
  const startsLate = !isDir || (files.length > 0 && Number(SEGMENT.exec(path.basename(files[0]))?.[1]) > 1);
  // Null while the records before the first one read are missing (a pruned trail, one segment):
  // the tree is resumed from the first signed checkpoint's frontier.
  let frontier: MerkleFrontier | null = new MerkleFrontier();
  let expectedSeq = 1;
  let prevHash = GENESIS;
  let records = 0;
  let lastSeq = 0;
  let checkpoints = 0;
  let coveredSeq = 0;
  let uncheckedFrom = 0;
  let lastTime = '';
  let previousSegment: { file: string; last_seq: number; last_hash: string; sha256: string } | null = null;
  // After a chain break the Merkle tree (which lacks a leaf or holds a wrong one) is resumed from
  // the next checkpoint's signed frontier, and after a line that is not JSON the next link is
  // not checked: one damaged line is one problem, not one per record or checkpoint after it.
  let afterGarbled = false;
  let firstBreakSeq: number | null = null;
  const chainBreak = (where: { file: string; line: number }, seq: number | null, issues: string[]) => {
    problems.push({ ...where, seq, problem: issues.join('; ') });
    firstBreakSeq ??= seq ?? expectedSeq;
    frontier = null;
  };

  files.forEach((file, fileIndex) => {
    options.onProgress?.({ done: fileIndex, total: files.length, records });
    const whole = readFileSync(file);
    const problemsBefore = problems.length;
    // The newest segment's zero tail (the writer's preallocation) is not content; see the header.
    const tail = zeroTail(whole);
    const newest = fileIndex === files.length - 1;
    if (tail < whole.length && !newest)
      problems.push({
        file,
        line: 0,
        seq: null,
        problem: `${whole.length - tail} NUL bytes at its end, but it is not the newest segment: a finished segment is cut back to its last record`,
      });
    const data = newest ? whole.subarray(0, tail) : whole;
    const lines = splitLines(data);
    // A live trail's newest segment may end in a write in progress (the auditor's view on a running gateway).
    if (lines.torn && !(options.live && newest))
      problems.push({ file, line: lines.lines.length + 1, seq: null, problem: 'the last line is incomplete (torn write or truncation)' });
    lines.lines.forEach((line, i) => {
      const where = { file, line: i + 1 };
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line.toString('utf8'));
      } catch {
        const what = line.includes(0) ? 'NUL bytes inside the segment (overwritten with zeros)' : 'not valid JSON (modified or corrupted)';
        chainBreak(where, null, [`chain break at seq ${expectedSeq}: ${what}`]);
        afterGarbled = true;
        prevHash = sha256(line);
        expectedSeq++;
        return;
      }
      const seq = typeof rec.seq === 'number' ? rec.seq : null;
      if (records === 0 && seq !== null && seq > 1 && startsLate) {
        // The trail starts later than seq 1: continue from what its segment_start says came before.
        const before = rec.type === 'segment_start' ? (rec.previous as { last_seq?: unknown; last_hash?: unknown } | null) : null;
        expectedSeq = typeof before?.last_seq === 'number' ? before.last_seq + 1 : seq;
        prevHash = typeof before?.last_hash === 'string' ? before.last_hash : String(rec.prev);
        frontier = null;
        uncheckedFrom = expectedSeq;
        if (!isDir) unverifiable.push(`records 1..${expectedSeq - 1} are not in the file given: they cannot be checked`);
      }
      const issues: string[] = [];
      if (seq === null) issues.push('no seq');
      else if (seq > expectedSeq)
        issues.push(
          `chain break at seq ${expectedSeq}: seq ${seq} where ${expectedSeq} was expected: ${seq - expectedSeq} record(s) missing before it (deleted)`,
        );
      else if (seq < expectedSeq) issues.push(`chain break at seq ${seq}: seq ${seq} where ${expectedSeq} was expected: duplicated or reordered record`);
      else if (rec.prev !== prevHash && !afterGarbled)
        issues.push(`chain break at seq ${seq}: prev does not match the hash of the previous record (seq ${seq - 1}): that record was modified or replaced`);
      const segmentIssue = (problem: string) => issues.push(problem);
      if (i === 0 && previousSegment) checkSegmentStart(rec, previousSegment, segmentIssue);
      else if (rec.type === 'segment_start' && !(i === 0 && records === 0)) issues.push('a segment_start record that does not open its segment');
      afterGarbled = false;
      if (issues.length) chainBreak(where, seq, issues);
      if (rec.type === 'checkpoint') {
        checkpoints++;
        if (!frontier) frontier = resumeFrontier(rec);
        const problem = frontier
          ? checkCheckpoint(rec, frontier, keys)
          : firstBreakSeq === null
            ? 'a checkpoint without a usable frontier, after missing records: it cannot be checked'
            : null;
        if (problem) {
          problems.push({ ...where, seq, problem });
          firstBreakSeq ??= seq;
          frontier = resumeFrontier(rec);
        } else if (seq !== null && frontier) coveredSeq = seq;
        if (uncheckedFrom && seq !== null && !problem) {
          if (seq > uncheckedFrom)
            unverifiable.push(
              `records ${uncheckedFrom}..${seq - 1} precede the first checkpoint here and the records before them are missing: they cannot be checked against a signature`,
            );
          uncheckedFrom = 0;
        }
      }
      if (typeof rec.time === 'string') {
        if (lastTime && rec.time < lastTime)
          warn(
            `${file}:${i + 1} (seq ${seq}): time ${rec.time} is earlier than the record before (${lastTime}); the clock stepped back (order is given by seq)`,
          );
        lastTime = rec.time;
      }
      prevHash = sha256(line);
      frontier?.push(leafHash(line));
      if (frontier && external.some((c) => c.size === frontier!.size)) wantedRoots.set(frontier.size, frontier.root());
      expectedSeq = (seq ?? expectedSeq) + 1;
      lastSeq = seq ?? lastSeq;
      records++;
    });
    // A segment already reported damaged would fail the next one's digest of it too: not again.
    previousSegment = { file: path.basename(file), last_seq: lastSeq, last_hash: prevHash, sha256: problems.length > problemsBefore ? '' : sha256(data) };
  });
  const firstSeq = lastSeq - records + 1;

  for (const c of external) {
    const root = wantedRoots.get(c.size);
    if (c.size > lastSeq) {
      problems.push({
        file: c.label,
        line: 0,
        seq: null,
        problem: `the checkpoint commits to ${c.size} records but the trail holds ${lastSeq}: records were removed from the end (truncated or rolled back)`,
      });
    } else if (firstBreakSeq !== null && firstBreakSeq <= c.size && !root?.equals(c.root)) {
      // The chain break before c.size is reported already; this mismatch is its consequence.
    } else if (firstSeq > 1 && !root) {
      unverifiable.push(`${c.label}: covers records that are not here; it cannot be checked`);
    } else if (c.size > 0 && !root?.equals(c.root)) {
      problems.push({
        file: c.label,
        line: 0,
        seq: null,
        problem: `the trail's first ${c.size} records are not the ones the checkpoint signed: the trail was rolled back and rewritten`,
      });
    } else coveredSeq = Math.max(coveredSeq, c.size);
  }
  if (keys.length > 0 && lastSeq > coveredSeq && !(uncheckedFrom && coveredSeq === 0)) {
    unverifiable.push(
      `records ${coveredSeq + 1}..${lastSeq} come after the last signed checkpoint: a cut or rewritten tail there could not be detected (a running gateway signs them within every_seconds)`,
    );
  }
  const verdict = problems.length ? 'tampered' : unverifiable.length ? 'unverifiable' : 'verified';
  return { verdict, files, records, lastSeq, checkpoints, coveredSeq, keys: keys.map((k) => `${k.name}+${k.keyId}`), problems, unverifiable, warnings };
}

/** A file's complete lines as bytes (hashes are over bytes, not decoded text) and whether a torn one follows. */
function splitLines(data: Buffer): { lines: Buffer[]; torn: boolean } {
  const lines: Buffer[] = [];
  let start = 0;
  for (let end = data.indexOf(0x0a); end >= 0; end = data.indexOf(0x0a, start)) {
    lines.push(data.subarray(start, end));
    start = end + 1;
  }
  return { lines, torn: start < data.length };
}

/** Where a file's trailing run of NUL bytes begins (its length when it has none). */
function zeroTail(data: Buffer): number {
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  return end;
}

/** The tree resumed from a checkpoint's frontier, when it reproduces the root the note signs. */
function resumeFrontier(rec: Record<string, unknown>): MerkleFrontier | null {
  try {
    const body = parseCheckpointBody(parseNote(String(rec.note)).text);
    if (!Array.isArray(rec.frontier)) return null;
    const f = MerkleFrontier.resume(
      rec.frontier.map((h) => Buffer.from(String(h), 'base64')),
      body.size,
    );
    return f.root().equals(body.root) ? f : null;
  } catch {
    return null;
  }
}

/** Checks a segment's first record against the segment before it (its digest unless that is ''). */
function checkSegmentStart(
  rec: Record<string, unknown>,
  previous: { file: string; last_seq: number; last_hash: string; sha256: string },
  report: (problem: string) => void,
): void {
  if (rec.type !== 'segment_start') return report(`the segment does not open with segment_start: it does not follow ${previous.file}`);
  const claimed = (rec.previous ?? {}) as Record<string, unknown>;
  if (claimed.file !== previous.file)
    return report(`segment_start follows ${String(claimed.file)}, not ${previous.file}: a segment is missing or segments were swapped`);
  if (claimed.last_seq !== previous.last_seq || claimed.last_hash !== previous.last_hash)
    return report(`segment_start does not match the end of ${previous.file}: records were removed from or added to its end`);
  if (previous.sha256 && claimed.sha256 !== previous.sha256) report(`segment_start's digest of ${previous.file} does not match the file: it was modified`);
}

/** Checks one checkpoint record against the records before it; returns the problem, if any. */
function checkCheckpoint(rec: Record<string, unknown>, frontier: MerkleFrontier, keys: readonly NoteVerifier[]): string | null {
  try {
    const note = parseNote(String(rec.note));
    const body = parseCheckpointBody(note.text);
    if (body.size !== frontier.size || rec.size !== body.size) return `the checkpoint covers ${body.size} records but ${frontier.size} precede it`;
    if (!body.root.equals(frontier.root()))
      return "the checkpoint's Merkle root does not match the records before it: records were changed and the chain rebuilt";
    if (rec.root !== body.root.toString('base64')) return "the checkpoint record's root field differs from its signed note";
    const own = frontier.hashes().map((h) => h.toString('base64'));
    if (rec.frontier !== undefined && JSON.stringify(rec.frontier) !== JSON.stringify(own))
      return "the checkpoint record's frontier differs from the records before it";
    const extra = Object.keys(rec).filter((k) => !CHECKPOINT_FIELDS.has(k));
    if (extra.length) return `the checkpoint record holds fields no signature covers: ${extra.join(', ')}`;
    if (keys.length === 0) return null;
    const key = verifyNote(note, keys);
    if (!key)
      return `the checkpoint is signed by an unknown key (${note.signatures.map((s) => `${s.name}+${s.keyId}`).join(', ')}): wrong key, or a forged trail`;
    if (rec.key_id !== key.keyId) return "the checkpoint record's key_id is not the key that signed it";
    if (body.origin !== key.name) return `the checkpoint's origin "${body.origin}" is not its key's name "${key.name}"`;
    return null;
  } catch (err) {
    return `invalid checkpoint: ${(err as Error).message}`;
  }
}

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
 * Verdict: `tampered` when any check fails; else `unverifiable` when something could not be
 * checked (no key, or records after the last signed checkpoint); else `verified`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { leafHash, MerkleFrontier } from './merkle';
import { parseCheckpointBody, parseNote, parseVerifierKey, verifyNote, type NoteVerifier } from './signed-note';

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
}

const SEGMENT = /^audit-(\d{8})\.jsonl$/;
const GENESIS = '0'.repeat(64);
const MAX_WARNINGS = 20;

function sha256(data: Buffer | string): string {
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
    keyTexts = readFileSync(path.join(dir, 'audit.pub'), 'utf8').split('\n').filter((l) => l.trim());
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

  // Segment numbering: 1, 2, 3… with none missing.
  if (isDir) {
    let expected = 1;
    for (const file of files) {
      const n = Number(SEGMENT.exec(path.basename(file))?.[1]);
      for (; expected < n; expected++) {
        const name = `audit-${String(expected).padStart(8, '0')}.jsonl`;
        problems.push({ file: path.join(target, name), line: 0, seq: null, problem: 'segment missing (deleted or renamed)' });
      }
      expected = n + 1;
    }
  }

  const frontier = new MerkleFrontier();
  let expectedSeq = 1;
  let prevHash = GENESIS;
  let records = 0;
  let lastSeq = 0;
  let checkpoints = 0;
  let coveredSeq = 0;
  let lastTime = '';
  let previousSegment: { file: string; last_seq: number; last_hash: string; sha256: string } | null = null;

  for (const file of files) {
    const data = readFileSync(file);
    const lines = data.toString('utf8').split('\n');
    if (lines[lines.length - 1] !== '') problems.push({ file, line: lines.length, seq: null, problem: 'the last line is incomplete (torn write or truncation)' });
    else lines.pop();
    lines.forEach((line, i) => {
      const where = { file, line: i + 1 };
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        problems.push({ ...where, seq: null, problem: 'not valid JSON' });
        prevHash = sha256(line);
        frontier.push(leafHash(line));
        expectedSeq++;
        return;
      }
      const seq = typeof rec.seq === 'number' ? rec.seq : null;
      if (seq === null) problems.push({ ...where, seq, problem: 'no seq' });
      else if (seq !== expectedSeq) {
        const what = seq < expectedSeq ? 'duplicated or reordered record' : `${seq - expectedSeq} record(s) missing before it`;
        problems.push({ ...where, seq, problem: `seq ${seq} where ${expectedSeq} was expected: ${what}` });
      }
      if (rec.prev !== prevHash) {
        problems.push({ ...where, seq, problem: 'prev does not match the hash of the previous record: the previous record was modified, removed or replaced' });
      }
      if (i === 0 && previousSegment) checkSegmentStart(rec, previousSegment, (problem) => problems.push({ ...where, seq, problem }));
      else if (rec.type === 'segment_start') problems.push({ ...where, seq, problem: 'a segment_start record that does not open its segment' });
      if (rec.type === 'checkpoint') {
        checkpoints++;
        const problem = checkCheckpoint(rec, frontier, keys);
        if (problem) problems.push({ ...where, seq, problem });
        else if (seq !== null) coveredSeq = seq;
      }
      if (typeof rec.time === 'string') {
        if (lastTime && rec.time < lastTime) warn(`${file}:${i + 1} (seq ${seq}): time ${rec.time} is earlier than the record before (${lastTime}); the clock stepped back (order is given by seq)`);
        lastTime = rec.time;
      }
      prevHash = sha256(line);
      frontier.push(leafHash(line));
      if (external.some((c) => c.size === frontier.size)) wantedRoots.set(frontier.size, frontier.root());
      expectedSeq = (seq ?? expectedSeq) + 1;
      lastSeq = seq ?? lastSeq;
      records++;
    });
    previousSegment = { file: path.basename(file), last_seq: lastSeq, last_hash: prevHash, sha256: sha256(data) };
  }

  for (const c of external) {
    const root = wantedRoots.get(c.size);
    if (c.size > records) {
      problems.push({ file: c.label, line: 0, seq: null, problem: `the checkpoint commits to ${c.size} records but the trail holds ${records}: records were removed from the end (truncated or rolled back)` });
    } else if (c.size > 0 && (!root || !root.equals(c.root))) {
      problems.push({ file: c.label, line: 0, seq: null, problem: `the trail's first ${c.size} records are not the ones the checkpoint signed: the trail was rolled back and rewritten` });
    } else coveredSeq = Math.max(coveredSeq, c.size);
  }
  if (keys.length > 0 && lastSeq > coveredSeq) {
    unverifiable.push(`records ${coveredSeq + 1}..${lastSeq} come after the last signed checkpoint: a cut or rewritten tail there could not be detected (a running gateway signs them within every_seconds)`);
  }
  const verdict = problems.length ? 'tampered' : unverifiable.length ? 'unverifiable' : 'verified';
  return { verdict, files, records, lastSeq, checkpoints, coveredSeq, keys: keys.map((k) => `${k.name}+${k.keyId}`), problems, unverifiable, warnings };
}

/** Checks a segment's first record against the segment before it. */
function checkSegmentStart(rec: Record<string, unknown>, previous: { file: string; last_seq: number; last_hash: string; sha256: string }, report: (problem: string) => void): void {
  if (rec.type !== 'segment_start') return report(`the segment does not open with segment_start: it does not follow ${previous.file}`);
  const claimed = (rec.previous ?? {}) as Record<string, unknown>;
  if (claimed.file !== previous.file) return report(`segment_start follows ${String(claimed.file)}, not ${previous.file}: a segment is missing or segments were swapped`);
  if (claimed.last_seq !== previous.last_seq || claimed.last_hash !== previous.last_hash) return report(`segment_start does not match the end of ${previous.file}: records were removed from or added to its end`);
  if (claimed.sha256 !== previous.sha256) report(`segment_start's digest of ${previous.file} does not match the file: it was modified`);
}

/** Checks one checkpoint record against the records before it; returns the problem, if any. */
function checkCheckpoint(rec: Record<string, unknown>, frontier: MerkleFrontier, keys: readonly NoteVerifier[]): string | null {
  try {
    const note = parseNote(String(rec.note));
    const body = parseCheckpointBody(note.text);
    if (body.size !== frontier.size || rec.size !== body.size) return `the checkpoint covers ${body.size} records but ${frontier.size} precede it`;
    if (!body.root.equals(frontier.root())) return "the checkpoint's Merkle root does not match the records before it: records were changed and the chain rebuilt";
    if (rec.root !== body.root.toString('base64')) return "the checkpoint record's root field differs from its signed note";
    const own = frontier.hashes().map((h) => h.toString('base64'));
    if (rec.frontier !== undefined && JSON.stringify(rec.frontier) !== JSON.stringify(own)) return "the checkpoint record's frontier differs from the records before it";
    if (keys.length > 0 && !verifyNote(note, keys)) return `the checkpoint is signed by an unknown key (${note.signatures.map((s) => `${s.name}+${s.keyId}`).join(', ')}): wrong key, or a forged trail`;
    return null;
  } catch (err) {
    return `invalid checkpoint: ${(err as Error).message}`;
  }
}

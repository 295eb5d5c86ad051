/**
 * Offline verification of an audit trail: needs only the segment files. Deliberately shares no
 * code with the writer beyond the file naming, so a bug in one is not mirrored in the other.
 * Checks, across segments in order: every line is JSON, `seq` runs 1, 2, 3… with no gap,
 * duplicate or reordering, and each `prev` is the SHA-256 of the previous line's exact bytes.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** One problem found, located by file and line (and seq when readable). */
export interface VerifyProblem {
  readonly file: string;
  readonly line: number;
  readonly seq: number | null;
  readonly problem: string;
}

/** The verdict. */
export interface VerifyReport {
  readonly files: readonly string[];
  readonly records: number;
  readonly lastSeq: number;
  readonly problems: readonly VerifyProblem[];
}

const SEGMENT = /^audit-\d{8}\.jsonl$/;
const GENESIS = '0'.repeat(64);

/** Verifies a trail directory (or a single segment file). */
export function verifyTrail(target: string): VerifyReport {
  const files = statSync(target).isDirectory()
    ? readdirSync(target)
        .filter((f) => SEGMENT.test(f))
        .sort()
        .map((f) => path.join(target, f))
    : [target];
  const problems: VerifyProblem[] = [];
  let expectedSeq = 1;
  let prevHash = GENESIS;
  let records = 0;
  let lastSeq = 0;
  for (const file of files) {
    const data = readFileSync(file);
    const text = data.toString('utf8');
    const lines = text.split('\n');
    if (lines[lines.length - 1] !== '') problems.push({ file, line: lines.length, seq: null, problem: 'the last line is incomplete (torn write or truncation)' });
    else lines.pop();
    lines.forEach((line, i) => {
      const where = { file, line: i + 1 };
      let rec: { seq?: unknown; prev?: unknown };
      try {
        rec = JSON.parse(line);
      } catch {
        problems.push({ ...where, seq: null, problem: 'not valid JSON' });
        prevHash = createHash('sha256').update(line).digest('hex');
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
      prevHash = createHash('sha256').update(line).digest('hex');
      expectedSeq = (seq ?? expectedSeq) + 1;
      lastSeq = seq ?? lastSeq;
      records++;
    });
  }
  return { files, records, lastSeq, problems };
}

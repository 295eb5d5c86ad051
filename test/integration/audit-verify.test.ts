/**
 * `portcullis audit verify` on a real multi-segment trail written by a real gateway, then
 * tampered with in every way an auditor worries about. Each is reported with its file and seq
 * (exit 1); what cannot be checked is said (exit 2); an untouched trail verifies (exit 0).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSignerKey, parseSignerKey, checkpointBody } from '../../src/audit/signed-note';
import { leafHash, MerkleFrontier } from '../../src/audit/merkle';
import { verifyTrail } from '../../src/audit/offline/verify';
import { keyHash, rawRequest, startTestGateway, startUpstream } from '../helpers/harness';

const CLI = path.resolve(__dirname, '../../dist/src/cli/main.js');
let trail: string;
let publicKey: string;
let segments: string[];

const yaml = (upstream: string) =>
  `listen: 127.0.0.1:0\nadmin: { enabled: false }\npolicy: { path: ./policies, watch: false }\n` +
  `audit: { path: ./audit, checkpoint: { every_records: 7 }, rotate: { max_bytes: 4096 } }\n` +
  `agents:\n  - id: a\n    key_sha256: "${keyHash('k')}"\nroutes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream}/\n`;
const POLICY = { 'p.rego': 'package portcullis\n\ndecision := {"allow": input.request.method == "GET", "reasons": ["GET only"]}\n' };

beforeAll(async () => {
  const upstream = await startUpstream();
  const gw = await startTestGateway({ yaml: yaml(upstream.url), policies: POLICY });
  for (let i = 0; i < 30; i++) await rawRequest(gw.gateway.url, { path: `/up/${i}`, method: i % 3 ? 'GET' : 'DELETE', headers: { authorization: 'Bearer k' } });
  await gw.close();
  await upstream.close();
  trail = gw.auditDir;
  publicKey = readFileSync(path.join(trail, 'audit.pub'), 'utf8').trim();
  segments = readdirSync(trail)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
}, 30_000);

/** A copy of the trail (segments, audit.pub, checkpoint) to tamper with. */
function copy(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-tamper-'));
  cpSync(trail, dir, { recursive: true });
  rmSync(path.join(dir, 'audit.lock'), { force: true });
  return dir;
}

const linesOf = (dir: string, seg: string) => readFileSync(path.join(dir, seg), 'utf8').split('\n').filter(Boolean);
const writeLines = (dir: string, seg: string, lines: string[]) => writeFileSync(path.join(dir, seg), lines.map((l) => `${l}\n`).join(''));
const sha = (x: string | Buffer) => createHash('sha256').update(x).digest('hex');

function cli(...args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, 'audit', 'verify', ...args], (err, stdout) => resolve({ code: err ? (err as { code: number }).code : 0, stdout })),
  );
}

/**
 * What an attacker with write access but without the key can do: recompute every prev hash and
 * every segment_start digest after an edit, so the chain links up again.
 */
function rechain(dir: string, onCheckpoint?: (rec: Record<string, unknown>, frontier: MerkleFrontier) => void): void {
  const frontier = new MerkleFrontier();
  let prev = '0'.repeat(64);
  let previous: Record<string, unknown> | null = null;
  for (const seg of readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()) {
    const out = linesOf(dir, seg).map((line, i) => {
      const rec = JSON.parse(line);
      rec.prev = prev;
      if (i === 0 && previous) rec.previous = previous;
      if (rec.type === 'checkpoint') onCheckpoint?.(rec, frontier);
      const text = JSON.stringify(rec);
      frontier.push(leafHash(text));
      prev = sha(text);
      return text;
    });
    writeLines(dir, seg, out);
    previous = { file: seg, last_seq: JSON.parse(out.at(-1)!).seq, last_hash: prev, sha256: sha(readFileSync(path.join(dir, seg))) };
  }
}

test('the trail spans several segments with checkpoints inside them', () => {
  expect(segments.length).toBeGreaterThanOrEqual(3);
  const second = JSON.parse(linesOf(trail, segments[1])[0]);
  expect(second).toMatchObject({ type: 'segment_start', segment: segments[1], previous: { file: segments[0] } });
  expect(second.previous.sha256).toBe(sha(readFileSync(path.join(trail, segments[0]))));
  const first = linesOf(trail, segments[0]).map((l) => JSON.parse(l));
  expect(first.at(-1).type).toBe('checkpoint');
});

test('an untouched trail verifies with the public key (exit 0)', async () => {
  const report = verifyTrail(trail, { keys: [publicKey] });
  expect(report.problems).toEqual([]);
  expect(report.verdict).toBe('verified');
  expect(report.coveredSeq).toBe(report.lastSeq);
  expect(report.checkpoints).toBeGreaterThanOrEqual(5);
  const r = await cli(trail, '--key', publicKey);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^OK: \d+ records in \d+ segment\(s\)/m);
});

test('without --key the key beside the trail is used, and the report says so', async () => {
  const r = await cli(trail);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/NOTE trusting the key\(s\) in .*audit\.pub/);
});

type Tamper = (dir: string) => void;
const mid = (_dir: string) => segments[1];
/** Index of the first decision record in the middle segment (not its first line). */
const decisionAt = (dir: string) => linesOf(dir, mid(dir)).findIndex((l, i) => i > 0 && l.includes('"type":"decision"'));
const cases: [string, Tamper, RegExp][] = [
  [
    'a modified record',
    (d) =>
      writeLines(
        d,
        mid(d),
        linesOf(d, mid(d)).map((x, i) => (i === decisionAt(d) ? x.replace(/"(allow|deny)"/, (m) => (m === '"allow"' ? '"deny"' : '"allow"')) : x)),
      ),
    /prev does not match/,
  ],
  [
    'a deleted middle line',
    (d) =>
      writeLines(
        d,
        mid(d),
        linesOf(d, mid(d)).filter((_x, i) => i !== 2),
      ),
    /1 record\(s\) missing/,
  ],
  [
    'two swapped lines',
    (d) => {
      const l = linesOf(d, mid(d));
      writeLines(
        d,
        mid(d),
        l.map((x, i) => (i === 2 ? l[3] : i === 3 ? l[2] : x)),
      );
    },
    /where \d+ was expected/,
  ],
  [
    'a duplicated line',
    (d) => {
      const l = linesOf(d, mid(d));
      writeLines(d, mid(d), [...l.slice(0, 3), l[2], ...l.slice(3)]);
    },
    /duplicated or reordered/,
  ],
  [
    'one flipped byte in a record',
    (d) => {
      const f = path.join(d, mid(d));
      const b = readFileSync(f);
      b[Math.floor(b.length / 2)] ^= 0x01;
      writeFileSync(f, b);
    },
    /TAMPERED/,
  ],
  [
    'one flipped byte in a checkpoint signature',
    (d) => {
      const l = linesOf(d, segments[0]);
      const i = l.findIndex((x) => x.includes('"type":"checkpoint"'));
      const rec = JSON.parse(l[i]);
      const [text, sig] = rec.note.split('\n\n');
      const raw = Buffer.from(sig.split(' ')[2], 'base64');
      raw[10] ^= 0x01;
      rec.note = `${text}\n\n${sig.split(' ').slice(0, 2).join(' ')} ${raw.toString('base64')}\n`;
      l[i] = JSON.stringify(rec);
      writeLines(d, segments[0], l);
      rechain(d);
    },
    /does not match the note \(forged or altered\)/,
  ],
  ['a middle segment deleted', (d) => rmSync(path.join(d, segments[1])), /audit-00000002\.jsonl: segment missing/],
  [
    'two segments swapped',
    (d) => {
      renameSync(path.join(d, segments[1]), path.join(d, 'x'));
      renameSync(path.join(d, segments[2]), path.join(d, segments[1]));
      renameSync(path.join(d, 'x'), path.join(d, segments[2]));
    },
    /segment_start follows .*a segment is missing or segments were swapped/,
  ],
  [
    'the tail cut by half a line',
    (d) => {
      const last = segments.at(-1)!;
      const f = path.join(d, last);
      truncateSync(f, statSync(f).size - 20);
    },
    /last line is incomplete/,
  ],
  [
    'the tail cut by whole records (the checkpoint file beside it still there)',
    (d) => {
      const last = segments.at(-1)!;
      writeLines(d, last, linesOf(d, last).slice(0, -2));
    },
    /commits to \d+ records but the trail holds \d+/,
  ],
  ['the newest segment deleted (the checkpoint file beside it still there)', (d) => rmSync(path.join(d, segments.at(-1)!)), /truncated or rolled back/],
  [
    'a record changed and the chain rebuilt without the key',
    (d) => {
      const at = decisionAt(d);
      writeLines(
        d,
        mid(d),
        linesOf(d, mid(d)).map((x, i) => (i === at ? x.replace(/"path":"[^"]*"/, '"path":"/up/innocent"') : x)),
      );
      rechain(d);
    },
    /Merkle root does not match the records before it/,
  ],
];

test.each(cases)('G8: %s is reported (exit 1)', async (_name, tamper, message) => {
  const dir = copy();
  tamper(dir);
  const r = await cli(dir, '--key', publicKey);
  expect(r.stdout).toMatch(message);
  expect(r.stdout).toMatch(/^FAILED \(\d+ problem\(s\)\):/m);
  expect(r.code).toBe(1);
});

/** The seq of line `i` of the middle segment of `dir`. */
const seqAt = (dir: string, i: number): number => JSON.parse(linesOf(dir, mid(dir))[i]).seq;

// One damaged line is one problem: verify resynchronises after a break (on the next record's
// seq and prev, and the Merkle tree on the next signed checkpoint) instead of reporting every
// later record, checkpoint and segment digest again.
test('one deleted record line is exactly one problem: the chain break at its seq', async () => {
  const dir = copy();
  const gone = seqAt(dir, 2);
  writeLines(
    dir,
    mid(dir),
    linesOf(dir, mid(dir)).filter((_x, i) => i !== 2),
  );
  const report = verifyTrail(dir, { keys: [publicKey] });
  expect(report.problems).toEqual([
    {
      file: path.join(dir, mid(dir)),
      line: 3,
      seq: gone + 1,
      problem: expect.stringMatching(new RegExp(`^chain break at seq ${gone}: .*1 record\\(s\\) missing before it`)),
    },
  ]);
  const r = await cli(dir, '--key', publicKey);
  expect(r.stdout).toMatch(/^FAILED \(1 problem\(s\)\):/m);
  expect(r.code).toBe(1);
});

test('one edited record line is exactly one problem, at the record after it', () => {
  const dir = copy();
  const at = decisionAt(dir);
  const edited = seqAt(dir, at);
  writeLines(
    dir,
    mid(dir),
    linesOf(dir, mid(dir)).map((x, i) => (i === at ? x.replace(/"path":"[^"]*"/, '"path":"/up/innocent"') : x)),
  );
  const report = verifyTrail(dir, { keys: [publicKey] });
  expect(report.problems).toEqual([
    {
      file: path.join(dir, mid(dir)),
      line: at + 2,
      seq: edited + 1,
      problem: expect.stringMatching(new RegExp(`^chain break at seq ${edited + 1}: prev does not match the hash of the previous record \\(seq ${edited}\\)`)),
    },
  ]);
});

test('one line made unreadable is exactly one problem, not also a broken link after it', () => {
  const dir = copy();
  writeLines(
    dir,
    mid(dir),
    linesOf(dir, mid(dir)).map((x, i) => (i === 2 ? x.slice(0, 20) : x)),
  );
  expect(verifyTrail(dir, { keys: [publicKey] }).problems).toEqual([
    expect.objectContaining({ line: 3, problem: expect.stringMatching(/^chain break at seq \d+: not valid JSON/) }),
  ]);
});

test('G8: a rebuilt trail re-signed with another key fails against the real key, not against the planted one', async () => {
  const dir = copy();
  const at = decisionAt(dir);
  writeLines(
    dir,
    mid(dir),
    linesOf(dir, mid(dir)).map((x, i) => (i === at ? x.replace(/"path":"[^"]*"/, '"path":"/up/innocent"') : x)),
  );
  // The attacker's own key: re-sign every checkpoint over the rebuilt records, plant the key.
  const forger = parseSignerKey(generateSignerKey(parseSignerKey(generateSignerKey('x')).name));
  rechain(dir, (rec, frontier) => {
    rec.note = forger.sign(checkpointBody(forger.name, frontier.size, frontier.root()));
    rec.root = frontier.root().toString('base64');
    rec.key_id = forger.keyId;
    rec.frontier = frontier.hashes().map((h) => h.toString('base64'));
  });
  writeFileSync(path.join(dir, 'audit.pub'), `${forger.verifierKey}\n`);
  rmSync(path.join(dir, 'checkpoint'));
  const trusted = await cli(dir, '--key', publicKey);
  expect(trusted.code).toBe(1);
  expect(trusted.stdout).toMatch(/signed by an unknown key \(x\+/);
  // Trusting whatever key sits beside the trail cannot catch this; the report says what it trusted.
  const planted = await cli(dir);
  expect(planted.stdout).toMatch(/NOTE trusting the key\(s\) in .*audit\.pub/);
});

test('records after the last signed checkpoint are unverifiable (exit 2), not silently accepted', async () => {
  const dir = copy();
  rmSync(path.join(dir, 'checkpoint'));
  const last = segments.at(-1)!;
  const lines = linesOf(dir, last);
  // Drop the closing checkpoint: the records before it are no longer covered by a signature.
  writeLines(dir, last, lines.slice(0, -1));
  const r = await cli(dir, '--key', publicKey);
  expect(r.stdout).toMatch(/UNVERIFIABLE records \d+\.\.\d+ come after the last signed checkpoint/);
  expect(r.code).toBe(2);
});

test('G8: with a checkpoint kept elsewhere, a tail cut back to an earlier checkpoint is caught', async () => {
  const held = path.join(mkdtempSync(path.join(os.tmpdir(), 'portcullis-held-')), 'checkpoint');
  cpSync(path.join(trail, 'checkpoint'), held);
  const dir = copy();
  rmSync(path.join(dir, 'checkpoint'));
  rmSync(path.join(dir, segments.at(-1)!));
  // Without the held copy, the shortened trail ends on a valid rotation checkpoint and looks whole.
  expect((await cli(dir, '--key', publicKey)).code).toBe(0);
  const r = await cli(dir, '--key', publicKey, '--checkpoint', held);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/records were removed from the end \(truncated or rolled back\)/);
});

test('an external checkpoint signed by another key is reported as such', async () => {
  const other = parseSignerKey(generateSignerKey('someone-else'));
  const held = path.join(mkdtempSync(path.join(os.tmpdir(), 'portcullis-held-')), 'checkpoint');
  writeFileSync(held, other.sign(checkpointBody('someone-else', 3, Buffer.alloc(32))));
  const r = await cli(trail, '--key', publicKey, '--checkpoint', held);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/not signed by any trusted key/);
});

test('a wrong public key makes every checkpoint fail, naming the key that did sign', async () => {
  const r = await cli(trail, '--key', parseSignerKey(generateSignerKey('portcullis-test/other')).verifierKey);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/signed by an unknown key/);
});

test('G8: a rolled-back trail that the gateway then continued is caught by a checkpoint kept elsewhere', async () => {
  const upstream = await startUpstream();
  const base = mkdtempSync(path.join(os.tmpdir(), 'portcullis-rollback-'));
  const start = () => startTestGateway({ dir: base, yaml: yaml(upstream.url), policies: POLICY });
  const call = async (gw: Awaited<ReturnType<typeof start>>, n: number, tag: string) => {
    for (let i = 0; i < n; i++) await rawRequest(gw.gateway.url, { path: `/up/${tag}${i}`, headers: { authorization: 'Bearer k' } });
  };
  let gw = await start();
  await call(gw, 3, 'a');
  await gw.close();
  const backup = mkdtempSync(path.join(os.tmpdir(), 'portcullis-backup-'));
  cpSync(gw.auditDir, backup, { recursive: true });
  gw = await start();
  await call(gw, 3, 'b');
  await gw.close();
  const held = path.join(backup, '..', `held-${path.basename(backup)}`);
  cpSync(path.join(gw.auditDir, 'checkpoint'), held);
  // Roll back to the backup, then let the gateway write other records past the held size.
  rmSync(gw.auditDir, { recursive: true });
  cpSync(backup, gw.auditDir, { recursive: true });
  gw = await start();
  await call(gw, 12, 'c');
  await gw.close();
  await upstream.close();
  const key = readFileSync(path.join(gw.auditDir, 'audit.pub'), 'utf8').trim();
  expect((await cli(gw.auditDir, '--key', key)).code).toBe(0);
  const r = await cli(gw.auditDir, '--key', key, '--checkpoint', held);
  expect(r.stdout).toMatch(/first \d+ records are not the ones the checkpoint signed: the trail was rolled back and rewritten/);
  expect(r.code).toBe(1);
}, 30_000);

test('bad usage and an unreadable checkpoint exit 2 with a message', async () => {
  expect((await cli()).code).toBe(2);
  const r = await cli(trail, '--checkpoint', '/nonexistent/checkpoint');
  expect(r.code).toBe(2);
});

test('G8: a field added to, or changed in, the last checkpoint record is caught even though nothing follows it', async () => {
  for (const edit of [(r: Record<string, unknown>) => ({ ...r, decision: 'allow' }), (r: Record<string, unknown>) => ({ ...r, key_id: '00000000' })]) {
    const dir = copy();
    const last = segments.at(-1)!;
    const lines = linesOf(dir, last);
    lines[lines.length - 1] = JSON.stringify(edit(JSON.parse(lines.at(-1)!)));
    writeLines(dir, last, lines);
    const r = await cli(dir, '--key', publicKey);
    expect(r.stdout).toMatch(/fields no signature covers: decision|key_id is not the key that signed it/);
    expect(r.code).toBe(1);
  }
});

test('G8: the first records of the first segment removed is tampering, not a pruned trail', async () => {
  const dir = copy();
  writeLines(dir, segments[0], linesOf(dir, segments[0]).slice(2));
  const r = await cli(dir, '--key', publicKey);
  expect(r.stdout).toMatch(/2 record\(s\) missing before it/);
  expect(r.code).toBe(1);
});

test('a trail whose oldest segments were pruned, or one segment alone, is unverifiable for what is missing, not tampered', async () => {
  const dir = copy();
  rmSync(path.join(dir, segments[0]));
  const pruned = verifyTrail(dir, { keys: [publicKey] });
  expect(pruned.problems).toEqual([]);
  expect(pruned.verdict).toBe('unverifiable');
  expect(pruned.unverifiable.join('\n')).toMatch(/are not here \(pruned or deleted\)/);
  const r = await cli(dir, '--key', publicKey);
  expect(r.code).toBe(2);
  const one = verifyTrail(path.join(trail, segments[2]), { keys: [publicKey] });
  expect(one.problems).toEqual([]);
  expect(one.verdict).toBe('unverifiable');
  expect(one.unverifiable.join('\n')).toMatch(/records 1\.\.\d+ are not in the file given/);
});

/**
 * The writer's signed checkpoints and rotation on real files: a checkpoint every N records, a
 * heartbeat when idle, one at rotation and at close; rotation by size and by age; key changes
 * recorded; the clock stepping backwards; and the notes accepted by Go's reference signed-note
 * implementation (golang.org/x/mod/sumdb/note), so other tools can check them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fullScan, scanTrail } from '../../src/audit/segments';
import { generateSignerKey, parseSignerKey } from '../../src/audit/signed-note';
import { verifyTrail } from '../../src/audit/offline/verify';
import { CHECKPOINT_FILE, openAuditWriter, PUBLIC_KEY_FILE } from '../../src/audit/writer';
import { segmentText, TEST_PUBLIC_KEY, writerOptions } from '../helpers/audit';

const fresh = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-ckpt-'));
const event = (n: number, time = new Date().toISOString()) => ({ type: 'gateway_start' as const, time, n });
const records = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .flatMap((f) =>
      segmentText(path.join(dir, f))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    );
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a checkpoint every N records, each over exactly the records before it, and one at close', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir, { checkpoint: { everyRecords: 10, everySeconds: 3600 } }));
  await Promise.all(Array.from({ length: 25 }, (_x, i) => w.append(event(i))));
  await w.close();
  const recs = records(dir);
  const checkpoints = recs.filter((r) => r.type === 'checkpoint');
  expect(checkpoints.map((c) => c.size)).toEqual([10, 21, recs.length - 1]);
  for (const c of checkpoints) expect(recs[c.size].seq).toBe(c.size + 1);
  expect(readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8')).toBe(checkpoints.at(-1).note);
  expect(readFileSync(path.join(dir, PUBLIC_KEY_FILE), 'utf8')).toBe(`${TEST_PUBLIC_KEY}\n`);
  expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] })).toMatchObject({ verdict: 'verified', problems: [] });
});

test('an idle trail still gets a signed heartbeat checkpoint every interval', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir, { checkpoint: { everyRecords: 1000, everySeconds: 1 } }));
  await w.append(event(1));
  await sleep(2300);
  const beats = records(dir).filter((r) => r.type === 'checkpoint');
  expect(beats.length).toBeGreaterThanOrEqual(2);
  // The second heartbeat covers the first: nothing else happened in between.
  expect(beats[1].size).toBe(beats[0].size + 1);
  await w.close();
  expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] }).verdict).toBe('verified');
});

test('rotation by size ends each segment with a checkpoint and opens the next with segment_start', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir, { rotate: { maxBytes: 4096, maxAgeSeconds: 3600 } }));
  for (let i = 0; i < 60; i++) await w.append({ ...event(i), pad: 'x'.repeat(200) });
  await w.close();
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
  expect(files.length).toBeGreaterThanOrEqual(3);
  files.forEach((f, i) => {
    const lines = readFileSync(path.join(dir, f), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.at(-1).type).toBe('checkpoint');
    if (i > 0) expect(lines[0]).toMatchObject({ type: 'segment_start', segment: f, previous: { file: files[i - 1] } });
  });
  expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] })).toMatchObject({ verdict: 'verified', problems: [] });
});

test('rotation by age happens on an idle trail too', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir, { rotate: { maxBytes: 1 << 30, maxAgeSeconds: 1 } }));
  await w.append(event(1));
  await sleep(2300);
  await w.close();
  expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length).toBeGreaterThanOrEqual(2);
  expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] })).toMatchObject({ verdict: 'verified', problems: [] });
});

test('a new signing key is recorded, published beside the old one, and both verify their own checkpoints', async () => {
  const dir = fresh();
  const w1 = await openAuditWriter(writerOptions(dir));
  await w1.append(event(1));
  await w1.close();
  const next = parseSignerKey(generateSignerKey('portcullis-test/rotated'));
  const w2 = await openAuditWriter(writerOptions(dir, { signer: next }));
  await w2.append(event(2));
  await w2.close();
  const change = records(dir).filter((r) => r.type === 'signing_key');
  expect(change).toHaveLength(2);
  expect(change[1]).toMatchObject({ key_id: next.keyId, public_key: next.verifierKey });
  expect(change[1].previous_key_id).toBe(change[0].key_id);
  expect(readFileSync(path.join(dir, PUBLIC_KEY_FILE), 'utf8')).toBe(`${TEST_PUBLIC_KEY}\n${next.verifierKey}\n`);
  expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY, next.verifierKey] }).verdict).toBe('verified');
  const onlyNew = verifyTrail(dir, { keys: [next.verifierKey] });
  expect(onlyNew.verdict).toBe('tampered');
  expect(onlyNew.problems[0].problem).toMatch(/unknown key/);
});

test('the clock stepping backwards breaks nothing: seq orders the trail, the verifier notes it', async () => {
  const dir = fresh();
  let t = Date.parse('2026-11-22T12:00:00Z');
  const earlier = () => {
    t -= 60_000;
    return new Date(t);
  };
  const w = await openAuditWriter(writerOptions(dir, { now: earlier, checkpoint: { everyRecords: 3, everySeconds: 3600 } }));
  for (let i = 0; i < 8; i++) await w.append(event(i, earlier().toISOString()));
  await w.close();
  const report = verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] });
  expect(report.verdict).toBe('verified');
  expect(report.warnings.some((x) => /clock stepped back/.test(x))).toBe(true);
});

test("Go's reference signed-note implementation accepts the checkpoints", () => {
  const dir = fresh();
  const bin = path.join(dir, 'note-verify');
  execFileSync('go', ['build', '-o', bin, '.'], { cwd: path.resolve(__dirname, '../interop/note-verify'), stdio: 'pipe', timeout: 120_000 });
  return (async () => {
    const trail = path.join(dir, 'trail');
    const w = await openAuditWriter(writerOptions(trail));
    await w.append(event(1));
    await w.close();
    const note = readFileSync(path.join(trail, CHECKPOINT_FILE), 'utf8');
    const ok = spawnSync(bin, [TEST_PUBLIC_KEY], { input: note, encoding: 'utf8' });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    // signing_key and the event: the closing checkpoint covers 2 records
    expect(ok.stdout).toMatch(/^portcullis-test\/audit\n2\n[A-Za-z0-9+/]{43}=\n$/);
    const bad = spawnSync(bin, [TEST_PUBLIC_KEY], { input: note.replace('\n2\n', '\n3\n'), encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/verification failure|invalid signature/i);
  })();
}, 150_000);

describe('resuming from the last checkpoint gives the same state as reading the whole trail', () => {
  const summary = (t: ReturnType<typeof scanTrail>) => ({
    seq: t.seq,
    hash: t.hash,
    root: t.frontier.root().toString('hex'),
    size: t.frontier.size,
    segment: t.segment,
    segmentBytes: t.segmentBytes,
    segmentDigest: t.segmentHash.copy().digest('hex'),
    lastCheckpointSeq: t.lastCheckpointSeq,
    lastKeyId: t.lastKeyId,
  });
  const shapes: [string, (dir: string) => void][] = [
    ['records after a checkpoint in the newest segment', () => undefined],
    [
      'a newest segment without a checkpoint (just after rotation)',
      (dir) => {
        const files = readdirSync(dir)
          .filter((f) => f.endsWith('.jsonl'))
          .sort();
        const last = path.join(dir, files.at(-1)!);
        const lines = readFileSync(last, 'utf8').split('\n').filter(Boolean);
        writeFileSync(
          last,
          lines
            .filter((l) => !l.includes('"type":"checkpoint"'))
            .map((l) => `${l}\n`)
            .join(''),
        );
      },
    ],
    [
      'an empty newest segment',
      (dir) => {
        const files = readdirSync(dir)
          .filter((f) => f.endsWith('.jsonl'))
          .sort();
        writeFileSync(
          path.join(
            dir,
            files.at(-1)!.replace(/\d{8}/, (n) => String(Number(n) + 1).padStart(8, '0')),
          ),
          '',
        );
      },
    ],
  ];
  test.each(shapes)('%s', async (_name, shape) => {
    const dir = fresh();
    const w = await openAuditWriter(
      writerOptions(dir, { rotate: { maxBytes: 4096, maxAgeSeconds: 3600 }, checkpoint: { everyRecords: 5, everySeconds: 3600 } }),
    );
    for (let i = 0; i < 37; i++) await w.append({ ...event(i), pad: 'y'.repeat(150) });
    await w.close();
    shape(dir);
    const fast = scanTrail(dir);
    expect(summary(fast)).toEqual(summary(fullScan(dir)));
    expect(fast.lastCheckpointSeq).toBeGreaterThan(0);
    // And the writer continues from it into a trail that verifies.
    const again = await openAuditWriter(writerOptions(dir));
    await again.append(event(99));
    await again.close();
    expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] })).toMatchObject({ verdict: 'verified', problems: [] });
  });
});

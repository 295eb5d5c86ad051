/** TrailFollower on real files: complete lines only, segment order, limits, durable ceiling, resume. */
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readPosition, writePosition } from '../../src/audit/sinks/sink-offset';
import { TrailFollower, type TrailBatch } from '../../src/audit/sinks/trail-follower';

const rec = (seq: number, extra = '') => `{"seq":${seq},"prev":"x","type":"decision","time":"2026-01-01T00:00:00.000Z"${extra}}`;
const fresh = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-follow-'));
const seqs = (b: TrailBatch | null) => (b ? b.lines.map((l) => JSON.parse(l).seq as number) : []);

test('reads complete lines only, then the rest once its newline is written', async () => {
  const dir = fresh();
  const seg = path.join(dir, 'audit-00000001.jsonl');
  writeFileSync(seg, `${rec(1)}\n${rec(2, ',"path":"/é"')}\n${rec(3).slice(0, 20)}`);
  const f = new TrailFollower({ dir });
  const first = await f.read(await f.start());
  expect(seqs(first)).toEqual([1, 2]);
  expect(first!.end).toEqual({ segment: 'audit-00000001.jsonl', offset: Buffer.byteLength(`${rec(1)}\n${rec(2, ',"path":"/é"')}\n`), seq: 2 });
  expect(await f.read(first!.end)).toBeNull();
  appendFileSync(seg, `${rec(3).slice(20)}\n`);
  expect(seqs(await f.read(first!.end))).toEqual([3]);
});

test('moves to the next segment only when the current one is read and a newer one exists', async () => {
  const dir = fresh();
  writeFileSync(path.join(dir, 'audit-00000001.jsonl'), `${rec(1)}\n${rec(2)}\n`);
  const f = new TrailFollower({ dir });
  const a = await f.read(await f.start());
  expect(await f.read(a!.end)).toBeNull();
  writeFileSync(path.join(dir, 'audit-00000002.jsonl'), `${rec(3)}\n${rec(4)}\n`);
  const b = await f.read(a!.end);
  expect(seqs(b)).toEqual([3, 4]);
  expect(b!.end.segment).toBe('audit-00000002.jsonl');
});

test('batches respect maxRecords and maxBytes (a single long line still goes alone)', async () => {
  const dir = fresh();
  const long = rec(3, `,"pad":"${'p'.repeat(5000)}"`);
  writeFileSync(path.join(dir, 'audit-00000001.jsonl'), `${[rec(1), rec(2), long, rec(4), rec(5)].join('\n')}\n`);
  const f = new TrailFollower({ dir, limits: { maxRecords: 2, maxBytes: 1000 } });
  const got: number[][] = [];
  let pos = await f.start();
  for (let b = await f.read(pos); b; b = await f.read(pos)) {
    got.push(seqs(b));
    pos = b.end;
  }
  expect(got).toEqual([[1, 2], [3], [4, 5]]);
});

test('never reads past the durable seq', async () => {
  const dir = fresh();
  writeFileSync(path.join(dir, 'audit-00000001.jsonl'), `${rec(1)}\n${rec(2)}\n${rec(3)}\n`);
  let durable = 1;
  const f = new TrailFollower({ dir, durableSeq: () => durable });
  const a = await f.read(await f.start());
  expect(seqs(a)).toEqual([1]);
  expect(await f.read(a!.end)).toBeNull();
  durable = 3;
  expect(seqs(await f.read(a!.end))).toEqual([2, 3]);
});

test('a gap in seq is an error, not a silent skip', async () => {
  const dir = fresh();
  writeFileSync(path.join(dir, 'audit-00000001.jsonl'), `${rec(1)}\n${rec(3)}\n`);
  const f = new TrailFollower({ dir });
  await expect(f.read(await f.start())).rejects.toThrow(/seq 3 where 2 was expected/);
});

test('positions persist atomically; a stale one is found again by seq', async () => {
  const dir = fresh();
  writeFileSync(path.join(dir, 'audit-00000001.jsonl'), `${rec(1)}\n${rec(2)}\n`);
  writeFileSync(path.join(dir, 'audit-00000002.jsonl'), `${rec(3)}\n${rec(4)}\n`);
  const f = new TrailFollower({ dir });
  const a = await f.read(await f.start());
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.join(dir, 'sinks'));
  await writePosition(dir, 'hook', a!.end);
  expect(await readPosition(dir, 'hook')).toEqual(a!.end);
  expect(await readPosition(dir, 'other')).toBeNull();
  expect(await f.resume(a!.end)).toEqual({ position: a!.end, relocated: false });
  // An offset that points into the middle of a line, or a missing segment: relocated by seq.
  const r1 = await f.resume({ segment: 'audit-00000001.jsonl', offset: 5, seq: 3 });
  expect(r1).toEqual({ position: { segment: 'audit-00000002.jsonl', offset: rec(3).length + 1, seq: 3 }, relocated: true });
  const r2 = await f.resume({ segment: 'audit-00000009.jsonl', offset: 0, seq: 1 });
  expect(r2.position).toEqual({ segment: 'audit-00000001.jsonl', offset: rec(1).length + 1, seq: 1 });
  writeFileSync(path.join(dir, 'sinks', 'bad.offset'), '{"segment":"x"}');
  await expect(readPosition(dir, 'bad')).rejects.toThrow(/does not hold a sink position/);
});

test('records removed before they were delivered are an error, not a silent skip', async () => {
  const dir = fresh();
  writeFileSync(path.join(dir, 'audit-00000002.jsonl'), `${rec(5)}\n${rec(6)}\n`);
  const f = new TrailFollower({ dir });
  // The oldest record left is the next one: resume there, keeping the seq check.
  expect(await f.locate(4)).toEqual({ segment: 'audit-00000002.jsonl', offset: 0, seq: 4 });
  await expect(f.resume({ segment: 'audit-00000001.jsonl', offset: 100, seq: 2 })).rejects.toThrow(/records 3\.\.4 are no longer in the trail/);
  // A trail that ends before the saved seq was cut back or replaced: stop rather than resend
  // everything under seqs the receiver already has.
  await expect(f.locate(40)).rejects.toThrow(/the trail ends before seq 40, which this sink already delivered/);
});

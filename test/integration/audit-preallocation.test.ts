/**
 * Preallocated segments (docs/audit.md, "Preallocation"): a strict writer keeps synced zeros
 * ahead of the newest segment's last record, so its syncs flush data only. Every reader finds the
 * records' end by content: the start-up scan and torn-tail recovery, `audit verify`, `audit
 * query` and the sinks' follower. A finished segment has no zero tail; zeros anywhere else are
 * tampering. Real files on the real disk (os.tmpdir(); the writer skips preallocation on tmpfs,
 * and so do these tests' expectations of a zero tail).
 */
import { cpSync, mkdtempSync, openSync, readdirSync, readFileSync, statfsSync, statSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runQuery } from '../../src/audit/offline/query';
import { verifyTrail } from '../../src/audit/offline/verify';
import { TrailFollower } from '../../src/audit/sinks/trail-follower';
import { openAuditWriter, type JsonlAuditWriter } from '../../src/audit/writer';
import { segmentText, TEST_PUBLIC_KEY, writerOptions } from '../helpers/audit';

const fresh = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-prealloc-'));
const event = (n: number) => ({ type: 'gateway_start' as const, time: new Date().toISOString(), n });
const segments = (dir: string) =>
  readdirSync(dir)
    .filter((f) => /^audit-\d{8}\.jsonl$/.test(f))
    .sort();
const onTmpfs = statfsSync(os.tmpdir()).type === 0x01021994;
const PREALLOCATE = 64 * 1024;

/** The segment's size and its records' bytes (everything before its zero tail). */
function layout(file: string): { size: number; content: number; nulInContent: boolean } {
  const data = readFileSync(file);
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  return { size: data.length, content: end, nulInContent: data.subarray(0, end).includes(0) };
}

async function writerWith(dir: string, records: number, extra = {}): Promise<JsonlAuditWriter> {
  const w = await openAuditWriter(writerOptions(dir, { preallocateBytes: PREALLOCATE, ...extra }));
  for (let i = 0; i < records; i++) await w.append(event(i));
  return w;
}

test('G3: the newest segment of a strict writer is zero-filled ahead of its records, and cut back to them at close', async () => {
  const dir = fresh();
  const w = await writerWith(dir, 20);
  const file = path.join(dir, segments(dir)[0]);
  const live = layout(file);
  expect(live.nulInContent).toBe(false);
  if (!onTmpfs) expect(live.size).toBeGreaterThanOrEqual(live.content + PREALLOCATE / 2);
  expect(segmentText(file).trimEnd().split('\n')).toHaveLength(21); // signing_key and the 20
  await w.close();
  const closed = layout(file);
  expect(closed.size).toBe(closed.content);
  expect(readFileSync(file, 'utf8').endsWith('}\n')).toBe(true);
  expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] })).toMatchObject({ verdict: 'verified', problems: [] });
});

test('G8: verify on a live trail with a zero tail finds no problem; query and export read its records', async () => {
  const dir = fresh();
  const w = await writerWith(dir, 30, { checkpoint: { everyRecords: 10, everySeconds: 3600 } });
  try {
    const report = verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] });
    expect(report.problems).toEqual([]);
    expect(report.records).toBe(w.lastSeq);
    const seen: number[] = [];
    const stats = runQuery(dir, { types: 'all' }, {}, (hit) => seen.push(hit.record.seq as number));
    expect(stats.unreadable).toBe(0);
    expect(seen).toEqual(Array.from({ length: w.lastSeq }, (_x, i) => i + 1));
  } finally {
    await w.close();
  }
});

test('G8: NUL bytes inside a segment, before a later record, are reported as tampering; so is a zero tail on a finished segment', async () => {
  const dir = fresh();
  const w = await writerWith(dir, 10);
  await w.close();
  const file = path.join(dir, segments(dir)[0]);
  const text = readFileSync(file, 'utf8');
  // Zero the fourth line's bytes, newline included: a later record follows them.
  const lines = text.split('\n');
  const at = Buffer.byteLength(lines.slice(0, 3).join('\n')) + 1;
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(Buffer.byteLength(lines[3]) + 1), 0, Buffer.byteLength(lines[3]) + 1, at);
  closeSync(fd);
  const report = verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] });
  expect(report.verdict).toBe('tampered');
  expect(report.problems.map((p) => p.problem).join('\n')).toMatch(/NUL bytes inside the segment/);

  // A zero tail anywhere but the newest segment: a finished segment is always cut back.
  const rotated = fresh();
  const r = await writerWith(rotated, 40, { rotate: { maxBytes: 4096, maxAgeSeconds: 3600 } });
  await r.close();
  const first = path.join(rotated, segments(rotated)[0]);
  const fd2 = openSync(first, 'r+');
  writeSync(fd2, Buffer.alloc(512), 0, 512, statSync(first).size);
  closeSync(fd2);
  expect(
    verifyTrail(rotated, { keys: [TEST_PUBLIC_KEY] })
      .problems.map((p) => p.problem)
      .join('\n'),
  ).toMatch(/NUL bytes at its end, but it is not the newest/);
});

test("G3: rotation counts the records' bytes, and every rotated segment is plain JSON Lines with no zero tail", async () => {
  const dir = fresh();
  const w = await writerWith(dir, 60, { rotate: { maxBytes: 4096, maxAgeSeconds: 3600 } });
  const files = segments(dir);
  expect(files.length).toBeGreaterThanOrEqual(3);
  for (const f of files.slice(0, -1)) {
    const l = layout(path.join(dir, f));
    expect({ f, size: l.size }).toEqual({ f, size: l.content });
    // Rotated once its records reached max_bytes: not because of the zeros (64 KiB > 4096).
    expect(l.content).toBeGreaterThanOrEqual(4096);
    expect(l.content).toBeLessThan(4096 + 2048);
  }
  const newest = layout(path.join(dir, files.at(-1)!));
  if (!onTmpfs) expect(newest.size).toBeGreaterThan(newest.content);
  await w.close();
  expect(verifyTrail(dir, { keys: [TEST_PUBLIC_KEY] })).toMatchObject({ verdict: 'verified', problems: [] });
});

test('G3: a torn line inside the zero tail (what kill -9 mid-write leaves) is moved aside at the next start, and the chain continues', async () => {
  const live = fresh();
  const w = await writerWith(live, 25);
  // What the disk holds when the process dies now: the files as they are, lock recorded as held.
  const crashed = fresh();
  cpSync(live, crashed, { recursive: true });
  await w.close();
  const file = path.join(crashed, segments(crashed)[0]);
  const before = layout(file);
  if (!onTmpfs) expect(before.size).toBeGreaterThan(before.content);
  const records = segmentText(file).trimEnd().split('\n');
  const last = JSON.parse(records.at(-1)!) as { seq: number };
  const fragment = `{"seq":${last.seq + 1},"prev":"00","type":"decision","decision_id":"torn-in-the-zeros`;
  const fd = openSync(file, 'r+');
  writeSync(fd, fragment, before.content);
  closeSync(fd);

  const reopened = await openAuditWriter(writerOptions(crashed, { preallocateBytes: PREALLOCATE }));
  for (let i = 0; i < 5; i++) await reopened.append(event(100 + i));
  await reopened.close();
  const text = segmentText(file);
  expect(text).not.toContain('torn-in-the-zeros');
  const after = text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, any>);
  expect(after.map((r) => r.seq)).toEqual(Array.from({ length: after.length }, (_x, i) => i + 1));
  // Every record from before the crash kept as it was, then the new ones after it.
  expect(after.slice(0, records.length)).toEqual(records.map((l) => JSON.parse(l)));
  expect(after.filter((r) => r.n >= 100)).toHaveLength(5);
  const recovered = after.find((r) => r.type === 'recovered_torn_tail')!;
  expect(readFileSync(path.join(crashed, recovered.moved_to), 'utf8')).toBe(fragment);
  expect(recovered.bytes).toBe(Buffer.byteLength(fragment));
  expect(after.some((r) => r.type === 'writer_takeover')).toBe(true);
  expect(layout(file)).toMatchObject({ nulInContent: false });
  expect(verifyTrail(crashed, { keys: [TEST_PUBLIC_KEY] })).toMatchObject({ verdict: 'verified', problems: [] });
});

test('G9: the sink follower delivers every record of a live preallocated segment, then the ones after a rotation', async () => {
  const dir = fresh();
  const w = await writerWith(dir, 30, { rotate: { maxBytes: 8192, maxAgeSeconds: 3600 } });
  const follower = new TrailFollower({ dir, durableSeq: () => w.lastSeq, limits: { maxRecords: 7, maxBytes: 1 << 20 } });
  const delivered: number[] = [];
  let position = await follower.start();
  const drain = async () => {
    for (let b = await follower.read(position); b; b = await follower.read(position)) {
      delivered.push(...b.lines.map((l) => JSON.parse(l).seq as number));
      position = b.end;
    }
  };
  await drain();
  expect(delivered).toEqual(Array.from({ length: w.lastSeq }, (_x, i) => i + 1));
  for (let i = 0; i < 60; i++) await w.append(event(1000 + i));
  await drain();
  expect(segments(dir).length).toBeGreaterThanOrEqual(2);
  expect(delivered).toEqual(Array.from({ length: w.lastSeq }, (_x, i) => i + 1));
  await w.close();
  await drain();
  expect(delivered).toEqual(Array.from({ length: w.lastSeq }, (_x, i) => i + 1));
});

test('preallocate_bytes 0 appends: the file is never larger than its records', async () => {
  const dir = fresh();
  const w = await writerWith(dir, 10, { preallocateBytes: 0 });
  const l = layout(path.join(dir, segments(dir)[0]));
  expect(l.size).toBe(l.content);
  await w.close();
});

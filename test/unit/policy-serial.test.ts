/**
 * The highest accepted policy serial, read back from a trail written by the real audit writer
 * (src/audit/policy-serial.ts): the newest `policy_loaded` with a serial, found from the newest
 * segment backwards, past a preallocated zero tail and a torn last line, without reading older
 * segments once found.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { highestAcceptedSerial } from '../../src/audit/policy-serial';
import { openAuditWriter } from '../../src/audit/writer';
import { writerOptions } from '../helpers/audit';

const fresh = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-serial-'));
const now = () => new Date().toISOString();
const loaded = (serial: number | undefined, sha: string, extra: Record<string, unknown> = {}) => ({
  type: 'policy_loaded' as const,
  time: now(),
  revision: `r${serial}`,
  bundle_sha256: sha,
  ...(serial === undefined ? {} : { serial }),
  ...extra,
});
const filler = (n: number, pad = 0) => ({ type: 'gateway_start' as const, time: now(), n, pad: 'x'.repeat(pad) });
const segments = (dir: string) => readdirSync(dir).filter((f) => /^audit-\d{8}\.jsonl$/.test(f));

test('no trail, or a trail with no serial yet, has no floor', async () => {
  expect(highestAcceptedSerial(path.join(fresh(), 'missing'))).toBeNull();
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir));
  await w.append(loaded(undefined, 'a'.repeat(64)));
  await w.append(filler(1));
  expect(highestAcceptedSerial(dir)).toBeNull();
  await w.close();
  expect(highestAcceptedSerial(dir)).toBeNull();
});

test('the newest policy_loaded with a serial wins, while the writer runs (zero tail) and after it closed', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir, { preallocateBytes: 64 * 1024 }));
  await w.append(loaded(3, 'a'.repeat(64)));
  await w.append(filler(1));
  await w.append(loaded(5, 'b'.repeat(64)));
  await w.append({ type: 'policy_rejected', time: now(), reason: 'rollback', serial: 9 });
  await w.append(loaded(undefined, 'c'.repeat(64)));
  await w.append(filler(2));
  expect(highestAcceptedSerial(dir)).toEqual({ serial: 5, bundleSha256: 'b'.repeat(64) });
  await w.close();
  expect(highestAcceptedSerial(dir)).toEqual({ serial: 5, bundleSha256: 'b'.repeat(64) });
  // A torn last line (no newline) is a write in progress, never a record.
  const newest = path.join(dir, segments(dir).sort().pop() as string);
  appendFileSync(newest, JSON.stringify(loaded(9, 'd'.repeat(64))));
  expect(highestAcceptedSerial(dir)).toEqual({ serial: 5, bundleSha256: 'b'.repeat(64) });
});

test('found in an older segment when the newer ones have none, and older segments are not read once found', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir, { rotate: { maxBytes: 4096, maxAgeSeconds: 3600 } }));
  await w.append(loaded(1, '1'.repeat(64)));
  for (let i = 0; i < 20; i++) await w.append(filler(i, 200));
  await w.append(loaded(2, '2'.repeat(64)));
  for (let i = 0; i < 40; i++) await w.append(filler(i, 200));
  await w.close();
  const files = segments(dir).sort();
  expect(files.length).toBeGreaterThan(3);
  expect(highestAcceptedSerial(dir)).toEqual({ serial: 2, bundleSha256: '2'.repeat(64) });
  // Replace the first segment (serial 1 is there) with a directory: reading it would throw EISDIR.
  renameSync(path.join(dir, files[0]), path.join(dir, `${files[0]}.moved`));
  mkdirSync(path.join(dir, files[0]));
  expect(highestAcceptedSerial(dir)).toEqual({ serial: 2, bundleSha256: '2'.repeat(64) });
});

test('lines are found across the 1 MiB read chunks of a large segment', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir));
  await w.append(filler(0, 100));
  await w.append(loaded(41, 'e'.repeat(64), { pad: 'y'.repeat(3000) }));
  for (let i = 0; i < 300; i++) await w.append(filler(i, 8000));
  await w.close();
  expect(segments(dir)).toHaveLength(1);
  expect(highestAcceptedSerial(dir)).toEqual({ serial: 41, bundleSha256: 'e'.repeat(64) });
});

test('the first line of a segment is read too', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir));
  await w.append(loaded(7, 'f'.repeat(64)));
  await w.close();
  // The writer's own records come first; make the policy_loaded the file's very first line.
  const file = path.join(dir, segments(dir)[0]);
  const other = fresh();
  renameSync(file, path.join(other, 'old.jsonl'));
  appendFileSync(file, `${JSON.stringify({ seq: 1, ...loaded(7, 'f'.repeat(64)) })}\n`);
  expect(highestAcceptedSerial(dir)).toEqual({ serial: 7, bundleSha256: 'f'.repeat(64) });
});

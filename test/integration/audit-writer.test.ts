/**
 * The audit writer on real files: one writer per directory, a stale lock taken over (a
 * container's pid 1 after a crash), a torn last line moved aside — never deleted — and the
 * chain continued.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verifyTrail } from '../../src/audit/verify';
import { LOCK_FILE, openAuditWriter } from '../../src/audit/writer';
import { writerOptions } from '../helpers/audit';

const fresh = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-writer-'));
const event = (n: number) => ({ type: 'gateway_start' as const, time: new Date().toISOString(), n });

test('a second writer on the same directory is refused while the first holds it', async () => {
  const dir = fresh();
  const first = await openAuditWriter(writerOptions(dir));
  await expect(openAuditWriter(writerOptions(dir))).rejects.toThrow(/refusing to start a second writer/);
  await first.close();
  const again = await openAuditWriter(writerOptions(dir));
  await again.close();
});

test('a lock held by another live process is refused, naming it and how to clear it', async () => {
  const dir = fresh();
  const sleeper = spawn('sleep', ['30']);
  try {
    writeFileSync(path.join(dir, LOCK_FILE), `${sleeper.pid}\n`);
    await expect(openAuditWriter(writerOptions(dir))).rejects.toThrow(new RegExp(`pid ${sleeper.pid}.*remove .*${LOCK_FILE}`));
  } finally {
    sleeper.kill();
  }
});

test('a stale lock — a dead pid, or our own pid left by an earlier process — is taken over', async () => {
  for (const pid of [process.pid, 2 ** 22 + 7]) {
    const dir = fresh();
    writeFileSync(path.join(dir, LOCK_FILE), `${pid}\n`);
    const w = await openAuditWriter(writerOptions(dir));
    await w.append(event(1));
    await w.close();
    expect(verifyTrail(dir).problems).toEqual([]);
  }
});

test('records appended concurrently share group commits and keep a gap-free chain', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir));
  await Promise.all(Array.from({ length: 500 }, (_x, i) => w.append(event(i))));
  await w.close();
  const report = verifyTrail(dir);
  expect(report.problems).toEqual([]);
  expect(report.verdict).toBe('verified');
  // signing_key, the 500, and the closing checkpoint
  expect(report.records).toBe(502);
});

test('a torn last line is moved aside, recorded, and the chain continues', async () => {
  const dir = fresh();
  const w = await openAuditWriter(writerOptions(dir));
  for (let i = 0; i < 3; i++) await w.append(event(i));
  await w.close();
  const segment = path.join(dir, readdirSync(dir).find((f) => f.endsWith('.jsonl'))!);
  const torn = '{"seq":4,"prev":"abc","type":"deci';
  appendFileSync(segment, torn);
  expect(verifyTrail(dir).problems[0].problem).toMatch(/incomplete/);

  const reopened = await openAuditWriter(writerOptions(dir));
  await reopened.append(event(99));
  await reopened.close();
  const aside = readdirSync(dir).filter((f) => f.includes('.torn-'));
  expect(aside).toHaveLength(1);
  expect(readFileSync(path.join(dir, aside[0]), 'utf8')).toBe(torn);
  const report = verifyTrail(dir);
  expect(report.problems).toEqual([]);
  const lines = readFileSync(segment, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // signing_key, 3 events, checkpoint (at close), then the recovery record and the new event
  expect(lines[5]).toMatchObject({ seq: 6, type: 'recovered_torn_tail', bytes: torn.length, moved_to: aside[0] });
  expect(lines[6]).toMatchObject({ seq: 7, n: 99 });
});

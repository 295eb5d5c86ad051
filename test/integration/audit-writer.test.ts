/**
 * The audit writer on real files: one writer per directory (a kernel lock), a lock left by a
 * writer that died taken over and recorded (a container's pid 1 after a crash, a reused pid), a
 * torn last line moved aside — never deleted — and the chain continued.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verifyTrail } from '../../src/audit/offline/verify';
import { LOCK_FILE, openAuditWriter } from '../../src/audit/writer';
import { writerOptions } from '../helpers/audit';

const fresh = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-writer-'));
const event = (n: number) => ({ type: 'gateway_start' as const, time: new Date().toISOString(), n });

const linesOf = (dir: string) =>
  readdirSync(dir)
    .filter((f) => /^audit-\d{8}\.jsonl$/.test(f))
    .sort()
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as Record<string, any>);

test('G14: a second writer on the same directory is refused while the first holds it, naming the holder and what to do', async () => {
  const dir = fresh();
  const first = await openAuditWriter(writerOptions(dir));
  const refused = openAuditWriter(writerOptions(dir, { lockWaitMs: 100 }));
  await expect(refused).rejects.toThrow(
    new RegExp(
      `locked by another writer: Portcullis pid ${process.pid} on this machine, writer epoch 1.*waited \\d+ ms.*stop that gateway first, or give this one its own audit.path.*deleting .*${LOCK_FILE} does not release it`,
    ),
  );
  await first.close();
  const again = await openAuditWriter(writerOptions(dir));
  await again.close();
  // Clean closes leave no takeover behind; the epoch counts the writers.
  expect(linesOf(dir).filter((r) => r.type === 'writer_takeover')).toEqual([]);
  expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, epoch: 2, state: 'released' });
});

test('G14: a kernel lock held by another process is refused; the moment that process is killed, the lock is free', async () => {
  const dir = fresh();
  // flock(1) takes the same kind of lock (flock(2)) and holds it while it runs; --close keeps
  // it out of the sleep child (a child that inherits the descriptor holds the lock too, which is
  // why the writer's descriptor is close-on-exec).
  const holder = spawn('flock', ['--exclusive', '--close', path.join(dir, LOCK_FILE), 'sleep', '30'], { stdio: 'ignore', detached: true });
  const killGroup = () => {
    try {
      process.kill(-holder.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  try {
    const deadline = Date.now() + 5000;
    while (!existsSync(path.join(dir, LOCK_FILE)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    await expect(openAuditWriter(writerOptions(dir, { lockWaitMs: 200 }))).rejects.toThrow(
      /locked by another writer: a process that has not yet written its name/,
    );
    // Waiting: the start that comes while the holder exits gets the lock once the kernel drops it.
    const waiting = openAuditWriter(writerOptions(dir, { lockWaitMs: 5000 }));
    setTimeout(() => holder.kill('SIGKILL'), 300);
    const w = await waiting;
    await w.close();
  } finally {
    killGroup();
  }
});

test('G14: a lock file left by a writer that died is taken over and recorded: its own pid from an earlier life, a dead pid, a pid now reused by an unrelated live process', async () => {
  const sleeper = spawn('sleep', ['30']);
  try {
    const earlier = {
      pid: process.pid,
      host: os.hostname(),
      pid_ns: 'pid:[1]',
      boot_id: null,
      started_at: '2026-01-01T00:00:00.000Z',
      epoch: 41,
      state: 'held',
    };
    const cases: { content: string; previous: Record<string, unknown>; epoch: number }[] = [
      { content: `${JSON.stringify(earlier)}\n`, previous: earlier, epoch: 42 },
      { content: `${JSON.stringify({ ...earlier, pid: sleeper.pid })}\n`, previous: { ...earlier, pid: sleeper.pid }, epoch: 42 },
      // The pid-only lock files of earlier versions.
      { content: `${process.pid}\n`, previous: { pid: process.pid, format: 'pid-file' }, epoch: 1 },
      { content: `${2 ** 22 + 7}\n`, previous: { pid: 2 ** 22 + 7, format: 'pid-file' }, epoch: 1 },
      { content: `${sleeper.pid}\n`, previous: { pid: sleeper.pid, format: 'pid-file' }, epoch: 1 },
    ];
    for (const c of cases) {
      const dir = fresh();
      writeFileSync(path.join(dir, LOCK_FILE), c.content);
      const w = await openAuditWriter(writerOptions(dir, { lockWaitMs: 0 }));
      await w.append(event(1));
      await w.close();
      expect(verifyTrail(dir).problems).toEqual([]);
      const takeovers = linesOf(dir).filter((r) => r.type === 'writer_takeover');
      expect(takeovers).toEqual([expect.objectContaining({ previous: c.previous, epoch: c.epoch, pid: process.pid })]);
      expect(takeovers[0].seq).toBe(1);
    }
  } finally {
    sleeper.kill();
  }
});

test('G14: a start that fails after taking the lock puts the dead holder back, so the next start still records the takeover', async () => {
  const dir = fresh();
  const dead = { pid: 2 ** 22 + 9, host: 'elsewhere', pid_ns: null, boot_id: null, started_at: '2026-01-01T00:00:00.000Z', epoch: 5, state: 'held' };
  writeFileSync(path.join(dir, LOCK_FILE), `${JSON.stringify(dead)}\n`);
  // A segment whose middle line is not JSON makes the start-up scan fail after the lock is taken.
  writeFileSync(path.join(dir, 'audit-00000001.jsonl'), '{"seq":1}\nnot json\n');
  writeFileSync(path.join(dir, 'audit-00000002.jsonl'), '');
  await expect(openAuditWriter(writerOptions(dir, { lockWaitMs: 0 }))).rejects.toThrow();
  expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8'))).toEqual(dead);
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

test('lines beyond ASCII are chained, leaf-hashed and written as the same UTF-8 bytes: the trail verifies across a restart and reads back as written', async () => {
  // The writer encodes each line once and hashes views of that buffer (chainRecord); a byte
  // count or a view off by one for multibyte characters would break the chain, the Merkle root
  // or the segment digest, and verify (which hashes the lines as read) would say so.
  const dir = fresh();
  const texts = ['café', '日本語のツール', 'emoji 🙂 and 𝄞', 'line\u2028separator\u2029paragraph', 'plain'];
  const w = await openAuditWriter(writerOptions(dir));
  await Promise.all(texts.map((text, n) => w.append({ ...event(n), text })));
  await w.close();
  const again = await openAuditWriter(writerOptions(dir));
  await again.append({ ...event(99), text: 'après le redémarrage' });
  await again.close();
  const report = verifyTrail(dir);
  expect(report.problems).toEqual([]);
  expect(report.verdict).toBe('verified');
  expect(linesOf(dir).flatMap((r) => (typeof r.text === 'string' ? [r.text] : []))).toEqual([...texts, 'après le redémarrage']);
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
  const lines = readFileSync(segment, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  // signing_key, 3 events, checkpoint (at close), then the recovery record and the new event
  expect(lines[5]).toMatchObject({ seq: 6, type: 'recovered_torn_tail', bytes: torn.length, moved_to: aside[0] });
  expect(lines[6]).toMatchObject({ seq: 7, n: 99 });
});

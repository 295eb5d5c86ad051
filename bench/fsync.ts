/**
 * `npm run bench:fsync`: what one fdatasync costs on the disk of os.tmpdir(), for the three ways
 * a log can lay out its file (issue 13). Each sync follows one positional write of a record:
 *
 * - append: the file grows with every record, so each fdatasync must also commit the new size
 *   (on ext4: a journal commit by jbd2, shared with every other writer of the filesystem);
 * - preallocated: the file was zero-filled and fsynced first, and records overwrite the zeros in
 *   place, so the size and the block map are already durable and a sync flushes data only
 *   (PostgreSQL's WAL with wal_init_zero);
 * - sparse: the file was extended with ftruncate and never written, so every record allocates
 *   blocks and its sync commits that allocation (for contrast: what wal_init_zero=off costs).
 *
 * Record sizes are a REST decision record (~500 B) and an MCP one (~1.7 KB). The modes are
 * interleaved in rounds, so a disturbance of the shared disk lands on all of them alike. Also
 * measured: zero-filling a whole segment (what preparing a spare costs, off the hot path) and a
 * directory fsync (what making a new segment's name durable costs).
 *
 * The sync loop runs twice: on its own, and beside a neighbour process that commits metadata
 * to the same filesystem's journal all the time (creates, writes, fsyncs and deletes small
 * files, as a test suite or a package install does). An fdatasync that needs a journal commit
 * waits for the neighbour's transaction too; one that flushes data only does not.
 *
 * Settings (environment):
 *   BENCH_FSYNC_SYNCS      syncs per mode and record size (3000)
 *   BENCH_FSYNC_ROUNDS     rounds the syncs are interleaved in (6)
 *   BENCH_FSYNC_FILL_MIB   size of the zero-filled segment timed on its own (64)
 *   BENCH_FSYNC_DIR        directory to measure in (a new one under os.tmpdir())
 *   BENCH_FSYNC_NEIGHBOUR  0: skip the run beside the journal-committing neighbour
 *
 * Writes bench/results/fsync-2026-12-03.json (or BENCH_FSYNC_OUT) and prints the tables.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LatencySample, type LatencySummary } from './latency-sample';
import { numberSetting } from './settings';

const ROOT = path.resolve(__dirname, '..', '..');
const OUT = process.env.BENCH_FSYNC_OUT || path.join(ROOT, 'bench', 'results', 'fsync-2026-12-03.json');
const TMPFS_MAGIC = 0x01021994;
const MODES = ['append', 'preallocated', 'sparse'] as const;
type Mode = (typeof MODES)[number];
const RECORD_BYTES = [500, 1700] as const;

const settings = {
  syncs: numberSetting('BENCH_FSYNC_SYNCS', 3000),
  rounds: Math.max(1, numberSetting('BENCH_FSYNC_ROUNDS', 6)),
  fillMiB: numberSetting('BENCH_FSYNC_FILL_MIB', 64),
  neighbour: process.env.BENCH_FSYNC_NEIGHBOUR !== '0',
};

/** The neighbour: metadata commits in a loop (a new 4 KiB file, fsync, delete), until killed. */
const NEIGHBOUR = `
const fs = require('node:fs'), path = require('node:path');
const dir = process.argv[1], buf = Buffer.alloc(4096, 1);
for (let i = 0; ; i++) {
  const f = path.join(dir, 'n' + (i % 64));
  const fd = fs.openSync(f, 'w'); fs.writeSync(fd, buf); fs.fsyncSync(fd); fs.closeSync(fd); fs.unlinkSync(f);
}`;

/** One file being written by one mode with one record size. */
interface Lane {
  readonly mode: Mode;
  readonly recordBytes: number;
  readonly fd: number;
  readonly record: Buffer;
  offset: number;
  readonly sample: LatencySample;
  /** Time of the write alone (to the page cache), for comparison. */
  readonly writes: LatencySample;
}

function log(line: string): void {
  process.stderr.write(`bench:fsync: ${line}\n`);
}

/** A record-shaped line of `bytes` bytes (JSON text ending in a newline; never zeros). */
function recordOf(bytes: number): Buffer {
  const head = `{"seq":1,"prev":"${'0'.repeat(64)}","type":"decision","pad":"`;
  return Buffer.from(`${head}${'x'.repeat(bytes - head.length - 3)}"}\n`);
}

/** Writes `bytes` zeros to `fd` from offset 0 in 1 MiB writes, then fsyncs it. */
function zeroFill(fd: number, bytes: number): void {
  const chunk = Buffer.alloc(1 << 20);
  for (let at = 0; at < bytes; ) {
    const n = fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - at), at);
    at += n;
  }
  fs.fsyncSync(fd);
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function openLane(dir: string, mode: Mode, recordBytes: number): Lane {
  const file = path.join(dir, `${mode}-${recordBytes}.jsonl`);
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o640);
  const size = Math.ceil((settings.syncs * recordBytes) / (1 << 20) + 1) * (1 << 20);
  if (mode === 'preallocated') zeroFill(fd, size);
  if (mode === 'sparse') {
    fs.ftruncateSync(fd, size);
    fs.fsyncSync(fd);
  }
  if (mode === 'append') fs.fsyncSync(fd);
  return { mode, recordBytes, fd, record: recordOf(recordBytes), offset: 0, sample: new LatencySample(), writes: new LatencySample() };
}

function runLane(lane: Lane, syncs: number): void {
  for (let i = 0; i < syncs; i++) {
    const t0 = performance.now();
    fs.writeSync(lane.fd, lane.record, 0, lane.record.length, lane.offset);
    const t1 = performance.now();
    fs.fdatasyncSync(lane.fd);
    const t2 = performance.now();
    lane.offset += lane.record.length;
    lane.writes.add(t1 - t0);
    lane.sample.add(t2 - t1);
  }
}

/** Sectors written to each block device since boot (/proc/diskstats), to see other writers. */
function sectorsWritten(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of fs.readFileSync('/proc/diskstats', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length > 10 && /^(vd|sd|nvme|xvd)[a-z0-9]*$/.test(f[2]) && !/\d$/.test(f[2].replace(/^nvme\d+n\d+/, ''))) out[f[2]] = Number(f[9]);
    }
  } catch {
    /* not Linux */
  }
  return out;
}

function filesystemOf(dir: string): string {
  const tmpfs = fs.statfsSync(dir).type === TMPFS_MAGIC;
  try {
    const last = execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').at(-1)!.split(/\s+/);
    return `${tmpfs ? 'tmpfs (fdatasync costs nothing here: the figures say nothing about a disk)' : last[1]} on ${last[0]} (mounted at ${last.at(-1)})`;
  } catch {
    return tmpfs ? 'tmpfs' : 'unknown';
  }
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

const f3 = (n: number) => n.toFixed(3);

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The sync loop over every mode and record size, in interleaved rounds, in fresh files. */
function measure(dir: string, phase: string): { mode: Mode; recordBytes: number; fdatasync: LatencySummary; write: LatencySummary }[] {
  const sub = path.join(dir, phase);
  fs.mkdirSync(sub);
  const lanes: Lane[] = [];
  try {
    for (const recordBytes of RECORD_BYTES) for (const mode of MODES) lanes.push(openLane(sub, mode, recordBytes));
    const perRound = Math.ceil(settings.syncs / settings.rounds);
    for (let round = 0; round < settings.rounds; round++) {
      for (const lane of lanes) runLane(lane, Math.min(perRound, settings.syncs - lane.sample.count));
      log(`${phase}: round ${round + 1}/${settings.rounds} done`);
    }
    return lanes.map((l) => ({ mode: l.mode, recordBytes: l.recordBytes, fdatasync: l.sample.summary(), write: l.writes.summary() }));
  } finally {
    for (const l of lanes) fs.closeSync(l.fd);
    fs.rmSync(sub, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = process.env.BENCH_FSYNC_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-fsync-'));
  fs.mkdirSync(dir, { recursive: true });
  const filesystem = filesystemOf(dir);
  log(`measuring in ${dir}: ${filesystem}`);
  const diskBefore = sectorsWritten();
  const started = new Date();
  const t0 = performance.now();
  try {
    const phases: { phase: string; results: ReturnType<typeof measure> }[] = [{ phase: 'alone', results: measure(dir, 'alone') }];
    if (settings.neighbour) {
      const nDir = path.join(dir, 'neighbour-files');
      fs.mkdirSync(nDir);
      const neighbour = spawn(process.execPath, ['-e', NEIGHBOUR, nDir], { stdio: 'ignore' });
      try {
        await new Promise((r) => setTimeout(r, 500));
        phases.push({ phase: 'beside a journal-committing neighbour', results: measure(dir, 'neighbour') });
      } finally {
        neighbour.kill('SIGKILL');
        await new Promise((r) => neighbour.once('exit', r));
      }
    }
    // Preparing a spare segment: zero-fill and fsync a whole one (the writer does it off the hot path).
    const fill = new LatencySample();
    for (let i = 0; i < 3; i++) {
      const file = path.join(dir, `fill-${i}.spare`);
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o640);
      const a = performance.now();
      zeroFill(fd, settings.fillMiB * (1 << 20));
      fill.add(performance.now() - a);
      fs.closeSync(fd);
      fs.rmSync(file);
    }
    // Making a new segment's name durable: create a file, fsync the directory.
    const dirSync = new LatencySample();
    for (let i = 0; i < 200; i++) {
      const file = path.join(dir, `entry-${i}`);
      fs.closeSync(fs.openSync(file, 'w'));
      const a = performance.now();
      syncDir(dir);
      dirSync.add(performance.now() - a);
    }
    const seconds = (performance.now() - t0) / 1000;
    const diskAfter = sectorsWritten();
    const disk = Object.fromEntries(Object.keys(diskAfter).map((d) => [d, Math.round(((diskAfter[d] - (diskBefore[d] ?? 0)) * 512) / 2 ** 20)]));
    const report = {
      date: started.toISOString(),
      seconds: Math.round(seconds * 10) / 10,
      machine: {
        nproc: os.availableParallelism(),
        cpuModel: cpuModel(),
        memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
        kernel: `${os.type()} ${os.release()}`,
      },
      node: process.version,
      directory: dir,
      filesystem,
      settings,
      loadavg: os.loadavg(),
      note: 'ms; each fdatasync follows one positional write of one record; modes interleaved in rounds',
      phases,
      zeroFillSegment: { mib: settings.fillMiB, ...fill.summary() },
      directoryFsync: dirSync.summary(),
      mibWrittenToDiskByTheWholeMachine: disk,
    };
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, `${JSON.stringify(report, null, 2)}\n`);
    const row = (s: LatencySummary) => [String(s.count), f3(s.p50Ms), f3(s.p90Ms), f3(s.p99Ms), f3(s.p999Ms), f3(s.maxMs)];
    let text = '';
    for (const { phase, results } of phases) {
      text += `fdatasync after one record write, ${phase} (${filesystem}; ${settings.rounds} interleaved rounds; ms):\n${table(
        ['mode', 'record', 'syncs', 'p50', 'p90', 'p99', 'p99.9', 'max'],
        results.map((r) => [r.mode, `${r.recordBytes} B`, ...row(r.fdatasync)]),
      )}\n\nthe write alone, ${phase} (to the page cache; ms):\n${table(
        ['mode', 'record', 'writes', 'p50', 'p90', 'p99', 'p99.9', 'max'],
        results.map((r) => [r.mode, `${r.recordBytes} B`, ...row(r.write)]),
      )}\n\n`;
    }
    process.stdout.write(
      `${text}zero-filling a ${settings.fillMiB} MiB segment and fsyncing it: ${row(fill.summary()).slice(1).join(' / ')} ms (p50/p90/p99/p99.9/max of 3)\n` +
        `directory fsync after creating a file: ${row(dirSync.summary()).slice(1).join(' / ')} ms (of 200)\n` +
        `MiB written to disk by the whole machine meanwhile: ${JSON.stringify(disk)}\nwritten to ${OUT}\n`,
    );
  } finally {
    if (!process.env.BENCH_FSYNC_DIR) fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err) => {
  process.stderr.write(`bench:fsync: ${(err as Error).stack}\n`);
  process.exitCode = 1;
});

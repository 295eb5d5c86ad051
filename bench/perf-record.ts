/**
 * `BENCH_PERF=1`: on-CPU profiles of the proxies with Linux `perf`, beside (not instead of) the
 * V8 profiles of `BENCH_CPU_PROF=1`. V8's sampler counts wall time on the JavaScript thread:
 * time the thread spends descheduled inside a native call is charged to that call. On this
 * benchmark's shared core that misleads: a `fs.fdatasync()` that wakes a thread-pool thread on
 * the same core showed as 18% of the V8 profile's busy time and 4% of perf's on-CPU samples
 * (docs/benchmarks.md, "On-CPU profiles"). perf samples what runs, on every thread, kernel
 * included. Node runs with `--perf-basic-prof-only-functions` so JIT frames have names
 * (/tmp/perf-PID.map, read when the profile is turned into stacks).
 *
 * Each target is recorded from after priming to the end of the runs; a target is idle between
 * its own runs, so its profile is its runs (and their warm-ups). Turn one into a flame graph and
 * a summary with `npm run flamegraph -- bench/results/profiles/NAME.perf.data OUT.svg`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';

/** The Node flag that makes JIT frames readable to perf. */
export const PERF_NODE_FLAGS = ['--perf-basic-prof-only-functions'];

/** Samples per second per thread: enough for a 5-second run, small enough not to move the figures. */
const FREQUENCY = 999;

/** Fails early, before minutes of benchmark, when perf cannot record here. */
export function assertPerfUsable(): void {
  const probe = spawnSync('perf', ['record', '-q', '-F', String(FREQUENCY), '-g', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0)
    throw new Error(
      `BENCH_PERF=1 needs Linux perf able to record this user's processes (Debian: apt-get install linux-perf; ` +
        `kernel.perf_event_paranoid at most 1 for a non-root user): ${probe.error?.message ?? probe.stderr.trim()}`,
    );
}

/** Starts one `perf record` per process; the function returned stops them and waits for their files. */
export async function recordOnCpu(processes: ReadonlyMap<string, number>, dir: string): Promise<() => Promise<string[]>> {
  mkdirSync(dir, { recursive: true });
  const running: { file: string; proc: ChildProcess; exited: Promise<void> }[] = [];
  for (const [name, pid] of processes) {
    const file = path.join(dir, `${name}.perf.data`);
    rmSync(file, { force: true });
    const proc = spawn('perf', ['record', '-q', '-F', String(FREQUENCY), '-g', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'inherit'] });
    running.push({ file, proc, exited: new Promise((resolve) => proc.once('exit', () => resolve())) });
  }
  // perf writes its header once it is attached; runs started before that would go unrecorded.
  const deadline = Date.now() + 5000;
  while (running.some((r) => !existsSync(r.file)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return async () => {
    for (const r of running) r.proc.kill('SIGINT');
    await Promise.all(running.map((r) => r.exited));
    return running.map((r) => r.file);
  };
}

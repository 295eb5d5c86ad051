/**
 * Reads folded stacks made from a `perf record` of a Node process (`perf script |
 * inferno-collapse-perf --all`, what `npm run flamegraph` does with a `.perf.data`) and prints
 * where the on-CPU time went: by thread, user against kernel, by the module of the innermost
 * JavaScript frame (kernel and native time is charged to the JavaScript that called into it,
 * so a socket write counts under node:net and an SHA-256 under node:internal/crypto/hash), and
 * the hottest frames. Functions V8 inlined are not frames of their own: their time is their
 * caller's, and which functions are inlined differs from one process to the next, so compare
 * modules across processes with care; threads and kernel time are exact.
 *
 *   node dist/bench/perf-summary.js STACKS.folded [--top 25]
 */
import { readFileSync } from 'node:fs';
import { moduleOf, top } from './profile';

/**
 * A JIT frame as `--perf-basic-prof` names it and inferno-collapse-perf --all marks it:
 * `JS:*'name /path/file.js:12:3_[j]` (or `… node:net:1231:42_[j]`).
 */
const JS_FRAME = /^JS:\S* ((?:\/|node:)\S+?):\d+:\d+(?:_\[j\])?$/;

export interface PerfSummary {
  readonly samples: number;
  readonly byThread: Map<string, number>;
  readonly kernel: number;
  readonly byModule: Map<string, number>;
  readonly byFrame: Map<string, number>;
}

/** The module a stack's innermost JavaScript frame belongs to, or the thread's name when none. */
function innermostModule(frames: readonly string[]): string {
  for (let i = frames.length - 1; i > 0; i--) {
    const m = JS_FRAME.exec(frames[i]);
    if (m) return moduleOf(m[1]);
  }
  return `(no JavaScript: ${frames[0]})`;
}

export function summarisePerf(folded: string): PerfSummary {
  const byThread = new Map<string, number>();
  const byModule = new Map<string, number>();
  const byFrame = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  let samples = 0;
  let kernel = 0;
  for (const line of folded.split('\n')) {
    const cut = line.lastIndexOf(' ');
    if (cut <= 0) continue;
    const n = Number(line.slice(cut + 1));
    const frames = line.slice(0, cut).split(';');
    samples += n;
    add(byThread, frames[0], n);
    const leaf = frames[frames.length - 1];
    // inferno-collapse-perf --all marks kernel frames with a _[k] suffix.
    if (leaf.endsWith('_[k]')) kernel += n;
    add(byModule, innermostModule(frames), n);
    add(byFrame, leaf, n);
  }
  return { samples, byThread, kernel, byModule, byFrame };
}

function main(argv: readonly string[]): void {
  const file = argv[0];
  if (!file) throw new Error('usage: perf-summary.js STACKS.folded [--top N]');
  const n = argv.includes('--top') ? Number(argv[argv.indexOf('--top') + 1]) : 25;
  const s = summarisePerf(readFileSync(file, 'utf8'));
  // The counts are perf's sample weights (nanoseconds on the cpu-clock event): shares are of on-CPU time.
  console.log(`${file}: ${((100 * s.kernel) / s.samples).toFixed(1)}% of the on-CPU time in the kernel`);
  console.log('\nby thread:');
  console.log(top(s.byThread, n, s.samples));
  console.log('\nby the module of the innermost JavaScript frame:');
  console.log(top(s.byModule, n, s.samples));
  console.log('\nhottest frames (self):');
  console.log(top(s.byFrame, n, s.samples));
}

if (require.main === module) main(process.argv.slice(2));

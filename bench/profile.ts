/**
 * Reads a V8 `.cpuprofile` (from `BENCH_CPU_PROF=1` or `node --cpu-prof`) and prints where the
 * time went: self and inclusive time by function and by package/module, as shares of the busy
 * (non-idle) time. `--folded FILE` also writes the stacks in the folded format ("a;b;c count")
 * that flame graph tools read (scripts/run.sh flamegraph turns it into an SVG with inferno).
 *
 *   node dist/bench/profile.js PROFILE.cpuprofile [--top 30] [--folded out.folded] [--skip-seconds S]
 *
 * `--skip-seconds` leaves out the first S seconds of samples: the process's start-up (module
 * loading, config validation, the policy's compilation), which is not per-call work.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Frames V8 reports that are not work: the idle loop and the sampler's own. */
const NOT_WORK = new Set(['(idle)', '(program)', '(root)']);

/** A short, stable name for a frame's module: `pkg` for node_modules, `src/x/y.ts` for ours. */
export function moduleOf(url: string): string {
  if (url === '') return '(native)';
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? url.slice(dist + '/dist/'.length).replace(/\.js$/, '.ts') : path.basename(url);
}

function frameName(f: CallFrame): string {
  const fn = f.functionName || '(anonymous)';
  return f.url ? `${fn} ${moduleOf(f.url)}:${f.lineNumber + 1}` : fn;
}

/** Self and inclusive microseconds per frame name, per module, and the folded stacks. */
export function summarise(
  profile: CpuProfile,
  skipUs = 0,
): {
  busyUs: number;
  totalUs: number;
  selfByFrame: Map<string, number>;
  totalByFrame: Map<string, number>;
  selfByModule: Map<string, number>;
  folded: Map<string, number>;
} {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  let at = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    if (at < skipUs) continue;
    totalUs += dt;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
  }
  const selfByFrame = new Map<string, number>();
  const totalByFrame = new Map<string, number>();
  const selfByModule = new Map<string, number>();
  const folded = new Map<string, number>();
  let busyUs = 0;
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || NOT_WORK.has(node.callFrame.functionName)) continue;
    busyUs += us;
    add(selfByFrame, frameName(node.callFrame), us);
    add(selfByModule, moduleOf(node.callFrame.url), us);
    const stack: string[] = [];
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame;
      if (f.functionName === '(root)') break;
      const name = frameName(f);
      stack.push(name);
      // Inclusive time counts a frame once per sample, however often it recurses.
      if (!seen.has(name)) {
        seen.add(name);
        add(totalByFrame, name, us);
      }
    }
    add(folded, stack.reverse().join(';'), us);
  }
  return { busyUs, totalUs, selfByFrame, totalByFrame, selfByModule, folded };
}

/** The `n` largest entries of `m`, each as a share of `busyUs`, one per line. */
export function top(m: Map<string, number>, n: number, busyUs: number): string {
  return [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((100 * v) / busyUs).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n');
}

function main(argv: readonly string[]): void {
  const file = argv[0];
  if (!file) throw new Error('usage: profile.js PROFILE.cpuprofile [--top N] [--folded OUT]');
  const n = argv.includes('--top') ? Number(argv[argv.indexOf('--top') + 1]) : 30;
  const out = argv.includes('--folded') ? argv[argv.indexOf('--folded') + 1] : null;
  const skip = argv.includes('--skip-seconds') ? Number(argv[argv.indexOf('--skip-seconds') + 1]) : 0;
  const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, skip * 1e6);
  console.log(`${file}: busy ${(s.busyUs / 1e6).toFixed(2)} s of ${(s.totalUs / 1e6).toFixed(2)} s sampled`);
  console.log('\nself time by module:');
  console.log(top(s.selfByModule, n, s.busyUs));
  console.log('\nself time by function:');
  console.log(top(s.selfByFrame, n, s.busyUs));
  console.log('\ninclusive time by function:');
  console.log(top(s.totalByFrame, n, s.busyUs));
  if (out) {
    // Folded counts are whole microseconds, so the flame graph's widths are time, not samples.
    writeFileSync(out, `${[...s.folded].map(([stack, us]) => `${stack} ${Math.round(us)}`).join('\n')}\n`);
    console.log(`\nfolded stacks written to ${out}`);
  }
}

if (require.main === module) main(process.argv.slice(2));

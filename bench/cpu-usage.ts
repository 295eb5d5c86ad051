/**
 * How much CPU other processes took while a run was measured. The benchmark shares its machine
 * (editors, test runs, builds), and on two cores a compiler in the background halves a proxy's
 * throughput; the orchestrator uses this to repeat a disturbed run and to flag one that stayed
 * disturbed. It also measures each target's own CPU time per request, the figure least
 * sensitive to what else runs. Linux only (reads /proc); elsewhere nothing is measured.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** CPU counters at one instant, in clock ticks. */
export interface CpuSample {
  readonly at: bigint;
  /**
   * User and system time of the whole machine. Interrupt time is left out: loopback traffic is
   * processed in softirqs that are not charged to the processes causing them.
   */
  readonly busy: number;
  /** Time the hypervisor gave to other guests while this one wanted to run. */
  readonly steal: number;
  /** Time used by the benchmark's own processes (and their reaped children). */
  readonly own: number;
}

/** What happened on the machine between two samples, in cores (CPU-seconds per second). */
export interface CpuShare {
  /** Used by processes that are not part of the benchmark. */
  readonly foreignCores: number;
  readonly stealCores: number;
}

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

function processTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces): state is field 3, utime..cstime are 14..17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return null;
  }
}

/** CPU seconds a process (all its threads) has used so far; null when /proc is not available. */
export function processCpuSeconds(pid: number): number | null {
  const ticks = processTicks(pid);
  return ticks === null ? null : ticks / clockTicks();
}

/** Samples the machine and the given processes; null when /proc is not available. */
export function sampleCpu(pids: readonly number[]): CpuSample | null {
  let line: string;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  } catch {
    return null;
  }
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const [user, nice, system, , , , , steal] = line.trim().split(/\s+/).slice(1).map(Number);
  let own = 0;
  for (const pid of pids) own += processTicks(pid) ?? 0;
  return { at: process.hrtime.bigint(), busy: user + nice + system, steal, own };
}

/** The CPU share of everything else between two samples. */
export function cpuShareBetween(a: CpuSample, b: CpuSample): CpuShare {
  const seconds = Number(b.at - a.at) / 1e9;
  const hz = clockTicks();
  return {
    foreignCores: Math.max(0, b.busy - a.busy - (b.own - a.own)) / hz / seconds,
    stealCores: (b.steal - a.steal) / hz / seconds,
  };
}

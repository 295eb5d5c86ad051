/**
 * Exact latency percentiles for the audit benchmark. Open-loop runs record tens of thousands
 * of latencies, some of them seconds long when a target falls behind its arrival rate, so the
 * samples are kept whole and sorted once (load.ts's 1 µs buckets stop at about one second).
 */

/** Percentiles of one run, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

/** Collects latencies (ms) and summarises them. */
export class LatencySample {
  private values = new Float64Array(1024);
  private n = 0;

  /** Records one latency in milliseconds. */
  add(ms: number): void {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = ms;
  }

  /** How many latencies were recorded. */
  get count(): number {
    return this.n;
  }

  /** Nearest-rank percentiles of everything recorded (NaN when nothing was). */
  summary(): LatencySummary {
    const sorted = this.values.slice(0, this.n).sort();
    const at = (p: number) => (this.n === 0 ? NaN : sorted[Math.min(this.n - 1, Math.ceil((p / 100) * this.n) - 1)]);
    return { count: this.n, p50Ms: at(50), p90Ms: at(90), p99Ms: at(99), p999Ms: at(99.9), maxMs: this.n ? sorted[this.n - 1] : NaN };
  }
}

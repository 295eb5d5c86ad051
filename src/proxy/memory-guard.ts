/**
 * Refuses calls before memory runs out, instead of letting the process die mid-call (which
 * loses every in-flight answer and restarts the pod). A sampler reads V8's heap use and the
 * process's RSS every 200 ms; under pressure the `admit` stage answers new calls 503
 * PC_OVERLOADED (audited, like any refusal) and readiness turns unready, until use falls back
 * below the lower mark. Pressure is: used heap above 85% of V8's heap limit, or RSS above 90%
 * of the container's memory limit when Node can see one (`process.constrainedMemory()`).
 * Reading a cached flag keeps the per-call cost to one property read; above 60% of a limit,
 * where one call can take what is left between two samples, every call samples afresh.
 *
 * Used heap counts garbage until V8 collects it, and a gateway refusing calls allocates little,
 * so V8 may not collect for a while. Before it declares pressure, and while under pressure (at
 * most once a second), the guard forces a full collection and samples again: garbage is never
 * taken for pressure, and recovery does not wait on allocation.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Fractions of the limits at which calls are refused, and at which they are taken again. */
export const HEAP_REFUSE = 0.85;
export const HEAP_RESUME = 0.75;
export const RSS_REFUSE = 0.9;
export const RSS_RESUME = 0.8;
/** Above this share of a limit, every call samples afresh instead of trusting the last sample. */
export const WATCH = 0.6;
const SAMPLE_MS = 200;
const GC_EVERY_MS = 1000;

/** V8's full collection, made callable (without starting Node with --expose-gc) the first time it is needed. */
let gc: (() => void) | null = null;
function collect(): void {
  if (gc === null) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

/** Where memory stands, as last sampled. */
export interface MemoryState {
  readonly heapUsed: number;
  readonly heapLimit: number;
  readonly rss: number;
  /** The container's limit, or null when Node sees none. */
  readonly rssLimit: number | null;
}

/** Watches memory and says when new calls must be refused. */
export class MemoryGuard {
  #pressed = false;
  #last: MemoryState;
  readonly #timer: NodeJS.Timeout;
  readonly #onChange: (pressed: boolean, state: MemoryState) => void;

  constructor(onChange: (pressed: boolean, state: MemoryState) => void) {
    this.#onChange = onChange;
    this.#last = sample();
    this.#timer = setInterval(() => this.check(), SAMPLE_MS);
    this.#timer.unref();
  }

  /**
   * True while new calls are refused. Near a limit a call can take what is left between two
   * samples, so there every call samples afresh; below it the last sample is read.
   */
  get pressed(): boolean {
    if (!this.#pressed && this.#near) this.check();
    return this.#pressed;
  }

  #near = false;

  get state(): MemoryState {
    return this.#last;
  }

  /** Samples now (also called by the timer). */
  check(): void {
    let s = sample();
    let next = this.#over(s);
    if (next && Date.now() - this.#collectedAt >= GC_EVERY_MS) {
      this.#collectedAt = Date.now();
      collect();
      s = sample();
      next = this.#over(s);
    }
    this.#last = s;
    this.#near = s.heapUsed / s.heapLimit > WATCH || (s.rssLimit !== null && s.rss / s.rssLimit > WATCH);
    if (next === this.#pressed) return;
    this.#pressed = next;
    this.#onChange(next, s);
  }

  #collectedAt = 0;

  /** Above the refusing mark, or while refusing, still above the resuming one. */
  #over(s: MemoryState): boolean {
    const heap = s.heapUsed / s.heapLimit;
    const rss = s.rssLimit ? s.rss / s.rssLimit : 0;
    return this.#pressed ? heap > HEAP_RESUME || rss > RSS_RESUME : heap > HEAP_REFUSE || rss > RSS_REFUSE;
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

/**
 * The heap's real ceiling. V8's `heap_size_limit` adds the young generation's reservation to
 * the old generation's limit (with --max-old-space-size=96 it reads 302 MB, and the process dies
 * at 96), so an explicit --max-old-space-size, where one was given, is the limit to watch.
 */
const HEAP_LIMIT: number = (() => {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  for (const a of args) {
    const m = /^--max[-_]old[-_]space[-_]size=(\d+)$/.exec(a);
    if (m) return Number(m[1]) * 1024 * 1024;
  }
  return getHeapStatistics().heap_size_limit;
})();

function sample(): MemoryState {
  const h = getHeapStatistics();
  const limit = process.constrainedMemory?.() ?? 0;
  // constrainedMemory() is 0, or a huge number, when no limit is set.
  const rssLimit = limit > 0 && limit < Number.MAX_SAFE_INTEGER && limit < 2 ** 50 ? limit : null;
  return { heapUsed: h.used_heap_size, heapLimit: Math.min(HEAP_LIMIT, h.heap_size_limit), rss: process.memoryUsage.rss(), rssLimit };
}

/**
 * What a candidate policy reads of its input, found statically from OPA's own parse of its Rego
 * (`opa parse --format json`), and the rule that says when a recorded decision cannot be
 * recomputed: the candidate reads something the record left out (`input_omitted`). Replay never
 * guesses a value that was not recorded; a record the candidate might decide on an omitted part
 * is undeterminable (docs/policy-lifecycle.md, Replay).
 *
 * The AST is OPA's JSON: a term is `{type, value}`; a reference `input.a[x].b` is
 * `{type: "ref", value: [{type: "var", value: "input"}, {type: "string", value: "a"}, {type: "var", value: "x"}, …]}`;
 * a bare `input` (passed whole: `f(input)`, `x := input`, `some k in input`) is a ref of the head
 * alone; `import input.a.b as c` is an import whose `path` is such a ref. So every read of the
 * input is a ref headed by the var `input`; the path it reads is the prefix of constant string
 * and number elements up to the first element that is not one (`input.a[x].b` reads `a` whole).
 */
import { parsePointer } from '../../mcp/audit-view';

/**
 * Builtins whose result is not a function of the input and data: a decision that used one cannot
 * be recomputed from a record.
 */
export const NONDETERMINISTIC_BUILTINS: readonly string[] = ['time.now_ns', 'rand.intn', 'uuid.rfc4122', 'http.send', 'net.lookup_ip_addr', 'opa.runtime'];

/** What a policy reads: input paths (each a list of keys; [] is the whole input) and non-deterministic builtins called. */
export interface InputReads {
  /** Distinct, sorted; a path whose prefix is also read is dropped (the shorter covers it). */
  readonly paths: readonly (readonly string[])[];
  readonly nondeterministic: readonly string[];
}

type Term = { readonly type?: unknown; readonly value?: unknown };

const isTerm = (node: unknown): node is Term => node !== null && typeof node === 'object' && !Array.isArray(node) && 'type' in node && 'value' in node;
const isInputVar = (t: unknown) => isTerm(t) && t.type === 'var' && t.value === 'input';
const constantKey = (t: unknown): string | null =>
  isTerm(t) && (t.type === 'string' || t.type === 'number') && (typeof t.value === 'string' || typeof t.value === 'number') ? String(t.value) : null;

/** The input paths and non-deterministic builtins in one or more parsed modules (`opa parse --format json` output). */
export function inputReadsOf(modules: readonly unknown[]): InputReads {
  const paths: string[][] = [];
  const builtins = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const child of node) walk(child);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    if (isTerm(node) && node.type === 'ref' && Array.isArray(node.value) && node.value.length > 0) {
      const elements = node.value as unknown[];
      if (isInputVar(elements[0])) {
        const path: string[] = [];
        for (let i = 1; i < elements.length; i++) {
          const key = constantKey(elements[i]);
          if (key === null) break;
          path.push(key);
        }
        paths.push(path);
      } else {
        const name = dottedName(elements);
        if (name !== null && NONDETERMINISTIC_BUILTINS.includes(name)) builtins.add(name);
        walk(elements[0]);
      }
      // Elements after the head may hold references of their own: input.a[input.b].
      for (let i = 1; i < elements.length; i++) walk(elements[i]);
      return;
    }
    // A var `input` anywhere but at the head of a ref: the input passed whole.
    if (isInputVar(node)) {
      paths.push([]);
      return;
    }
    for (const value of Object.values(node)) walk(value);
  };
  for (const m of modules) walk(m);
  return { paths: minimalPaths(paths), nondeterministic: [...builtins].sort() };
}

/** `time.now_ns` for the ref [var time, string now_ns]; null when not all constant. */
function dottedName(elements: readonly unknown[]): string | null {
  const head = elements[0];
  if (!isTerm(head) || head.type !== 'var' || typeof head.value !== 'string') return null;
  const parts = [head.value];
  for (let i = 1; i < elements.length; i++) {
    const e = elements[i];
    if (!isTerm(e) || e.type !== 'string' || typeof e.value !== 'string') return null;
    parts.push(e.value);
  }
  return parts.join('.');
}

const isPrefix = (a: readonly string[], b: readonly string[]) => a.length <= b.length && a.every((k, i) => k === b[i]);

/** Distinct paths, sorted, without those another path is a prefix of. */
function minimalPaths(paths: readonly string[][]): string[][] {
  const sorted = [...paths].sort((a, b) => a.length - b.length || a.join('\0').localeCompare(b.join('\0')));
  const kept: string[][] = [];
  for (const p of sorted) if (!kept.some((k) => isPrefix(k, p))) kept.push(p);
  return kept.sort((a, b) => (a.join('\0') < b.join('\0') ? -1 : a.join('\0') > b.join('\0') ? 1 : 0));
}

/** True when a read path and an omitted path overlap: one is a prefix of the other (or they are equal). */
export function overlaps(read: readonly string[], omitted: readonly string[]): boolean {
  return isPrefix(read, omitted) || isPrefix(omitted, read);
}

/** `input.request.headers["x-trace"]` for ['request', 'headers', 'x-trace']. */
export function formatInputPath(path: readonly string[]): string {
  return `input${path.map((k) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `.${k}` : `[${/^(0|[1-9][0-9]*)$/.test(k) ? k : JSON.stringify(k)}]`)).join('')}`;
}

/** A read path and the omitted pointer it meets (the first found), or null when none do. */
export interface OverlapFound {
  readonly read: readonly string[];
  readonly omitted: string;
}

/**
 * The first (read path, omitted pointer) pair that overlap, or null. Pointers are RFC 6901 (`~1`
 * is `/`, `~0` is `~`); a pointer that does not parse is taken to omit the whole input.
 */
export function firstOverlap(reads: readonly (readonly string[])[], omitted: readonly string[]): OverlapFound | null {
  for (const pointer of omitted) {
    const tokens = parsePointer(pointer) ?? [];
    for (const read of reads) if (overlaps(read, tokens)) return { read, omitted: pointer };
  }
  return null;
}

/**
 * The input cut down to what the policy reads: a copy holding only the values at `paths` (with
 * the objects and arrays on the way to them). A policy reaches its input only through
 * references, so it decides the same on this copy as on the whole input, and the module parses
 * a fraction of the JSON (half the cost of a decision on recorded traffic, docs/benchmarks.md).
 * A path that reads the whole input ([]) returns the input itself.
 */
export function projectInput(input: Record<string, unknown>, paths: readonly (readonly string[])[]): Record<string, unknown> {
  if (paths.some((p) => p.length === 0)) return input;
  const out: Record<string, unknown> = {};
  for (const p of paths) {
    let src: unknown = input;
    let dst: Record<string, unknown> | unknown[] = out;
    for (let i = 0; i < p.length; i++) {
      if (src === null || typeof src !== 'object' || !Object.hasOwn(src, p[i])) break;
      const value = (src as Record<string, unknown>)[p[i]];
      const last = i === p.length - 1;
      let next = (dst as Record<string, unknown>)[p[i]];
      if (last) next = value;
      else if (next === undefined) next = Array.isArray(value) ? [] : value !== null && typeof value === 'object' ? {} : value;
      // defineProperty: a member named "__proto__" stays a member.
      Object.defineProperty(dst, p[i], { value: next, enumerable: true, writable: true, configurable: true });
      if (last || next === null || typeof next !== 'object') break;
      src = value;
      dst = next as Record<string, unknown> | unknown[];
    }
  }
  return out;
}

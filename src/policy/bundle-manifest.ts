/**
 * The bundle's `.manifest` (OPA's Manifest: `revision`, `roots`, `rego_version`, `wasm`,
 * `metadata`) and the order of bundles in time. OPA signs what a bundle holds, not when it was
 * made: a valid but older signed bundle (one with a hole the new one closes) verifies as well
 * as the newest. The attack this closes is that rollback. A bundle carries
 * `metadata.serial`, a non-negative integer covered by the signature (the `.manifest` is a
 * signed file); a gateway accepts a serial above the highest it accepted before, or equal to it
 * with the same bytes (a restart, a re-poll), and refuses anything else. The highest accepted
 * serial survives restarts in the audit trail (src/audit/offline/policy-serial.ts).
 */
import { decodeUtf8, JsonSyntaxError, type JsonNode, parseJson } from './bundle-hash';
import { BundleRefusedError } from './bundle-refusal';

/** What the manifest says. */
export interface BundleManifest {
  /** `revision`, or null when absent or empty. */
  readonly revision: string | null;
  /** `roots` without leading or trailing `/`; `[""]` (everything) when absent, as in OPA. */
  readonly roots: readonly string[];
  /** `rego_version` (0 or 1), or null. */
  readonly regoVersion: number | null;
  /** `wasm`: the entrypoint of each Wasm module. */
  readonly wasm: readonly { readonly entrypoint: string; readonly module: string }[];
  /** `metadata.serial`, or null when absent. */
  readonly serial: number | null;
  /** `metadata`, or null when absent. */
  readonly metadata: Readonly<Record<string, unknown>> | null;
}

/** The manifest of a bundle without one. */
export const EMPTY_MANIFEST: BundleManifest = Object.freeze({
  revision: null,
  roots: Object.freeze(['']),
  regoVersion: null,
  wasm: Object.freeze([]),
  serial: null,
  metadata: null,
});

const isNull = (n: JsonNode | undefined) => n === undefined || (n.kind === 'literal' && n.literal === 'null');

/**
 * Parses `.manifest` bytes (null: the bundle has none). Throws BundleRefusedError `bad_manifest`
 * for a manifest OPA would not read, `bad_serial` for a serial that is not a non-negative safe
 * integer written as one (`7`, not `7.0`, `7e0`, `"7"` or `-0`).
 */
export function parseManifest(bytes: Buffer | null | undefined): BundleManifest {
  if (!bytes) return EMPTY_MANIFEST;
  const bad = (why: string) => new BundleRefusedError('bad_manifest', `.manifest: ${why}`, '.manifest');
  let doc: JsonNode;
  try {
    doc = parseJson(decodeUtf8(bytes));
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw bad(`not JSON (${err.message})`);
    throw err;
  }
  if (doc.kind !== 'object') throw bad('not a JSON object');
  const field = (name: string) => doc.entries.get(name);
  const string = (node: JsonNode | undefined, what: string): string => {
    if (isNull(node)) return '';
    if (node?.kind !== 'string') throw bad(`${what} is not a string`);
    return node.value;
  };

  const revision = string(field('revision'), 'revision');
  let roots: string[] = [''];
  const rootsNode = field('roots');
  if (!isNull(rootsNode)) {
    if (rootsNode?.kind !== 'array') throw bad('roots is not a list');
    roots = rootsNode.items.map((r) => string(r, 'roots[]').replace(/^\/+|\/+$/g, ''));
  }
  let regoVersion: number | null = null;
  const rv = field('rego_version');
  if (!isNull(rv)) {
    if (rv?.kind !== 'number' || !/^-?\d+$/.test(rv.literal)) throw bad('rego_version is not an integer');
    regoVersion = Number(rv.literal);
  }
  const wasm: { entrypoint: string; module: string }[] = [];
  const wasmNode = field('wasm');
  if (!isNull(wasmNode)) {
    if (wasmNode?.kind !== 'array') throw bad('wasm is not a list');
    for (const w of wasmNode.items) {
      if (isNull(w)) continue;
      if (w.kind !== 'object') throw bad('wasm[] is not an object');
      wasm.push({ entrypoint: string(w.entries.get('entrypoint'), 'wasm[].entrypoint'), module: string(w.entries.get('module'), 'wasm[].module') });
    }
  }
  let metadata: Record<string, unknown> | null = null;
  let serial: number | null = null;
  const meta = field('metadata');
  if (!isNull(meta)) {
    if (meta?.kind !== 'object') throw bad('metadata is not an object');
    metadata = toPlain(meta) as Record<string, unknown>;
    if (meta.entries.has('serial')) serial = readSerial(meta.entries.get('serial') as JsonNode);
  }
  return { revision: revision || null, roots, regoVersion, wasm, serial, metadata };
}

function readSerial(node: JsonNode): number {
  const shown =
    node.kind === 'number' ? node.literal : node.kind === 'string' ? JSON.stringify(node.value) : node.kind === 'literal' ? node.literal : node.kind;
  if (node.kind !== 'number' || !/^(?:0|[1-9]\d*)$/.test(node.literal) || !Number.isSafeInteger(Number(node.literal))) {
    throw new BundleRefusedError(
      'bad_serial',
      `.manifest: metadata.serial is ${shown}; it must be a non-negative integer up to ${Number.MAX_SAFE_INTEGER}, written without fraction, exponent or sign`,
      '.manifest',
    );
  }
  return Number(node.literal);
}

function toPlain(node: JsonNode): unknown {
  switch (node.kind) {
    case 'object':
      return Object.fromEntries([...node.entries].map(([k, v]) => [k, toPlain(v)]));
    case 'array':
      return node.items.map(toPlain);
    case 'string':
      return node.value;
    case 'number':
      return Number(node.literal);
    default:
      return node.literal === 'null' ? null : node.literal === 'true';
  }
}

/** The highest serial accepted before, and the SHA-256 (hex) of that bundle's bytes. */
export interface SerialFloor {
  readonly serial: number;
  readonly bundleSha256: string | null;
}

/** How a candidate's serial relates to the floor, when it is accepted. */
export type SerialOrder = 'unordered' | 'first' | 'newer' | 'same';

/**
 * The ordering rule: a serial above the floor is accepted (`newer`), one equal to it only with
 * the same bundle bytes (`same`: a restart, a re-poll); no floor yet accepts any (`first`).
 * Without a serial: refused with `no_serial` when `required` (signing is configured), else
 * accepted as `unordered`. Anything else is refused with `rollback`.
 */
export function checkSerial(serial: number | null, floor: SerialFloor | null, bundleSha256: string, required: boolean): SerialOrder {
  if (serial === null) {
    if (required) throw new BundleRefusedError('no_serial', '.manifest: the bundle has no metadata.serial; a signed bundle must carry one', '.manifest');
    return 'unordered';
  }
  if (floor === null) return 'first';
  if (serial > floor.serial) return 'newer';
  if (serial === floor.serial) {
    if (floor.bundleSha256 !== null && floor.bundleSha256.toLowerCase() === bundleSha256.toLowerCase()) return 'same';
    throw new BundleRefusedError(
      'rollback',
      `.manifest: serial ${serial} was accepted before for other bundle bytes (sha256 ${floor.bundleSha256 ?? 'unknown'})`,
      '.manifest',
    );
  }
  throw new BundleRefusedError('rollback', `.manifest: serial ${serial} is below ${floor.serial}, the highest accepted before`, '.manifest');
}

/**
 * What an MCP call puts in its audit record: method, tool, name or uri, session, and the tool
 * arguments after the policy's masking. The policy may return `mask: ["/arguments/card_number"]`
 * (RFC 6901 JSON pointers, rooted at this record's `mcp` object); each value found there is
 * replaced by "[masked]" and its pointer listed in `masked`. `arguments_sha256` is the SHA-256
 * of the canonical JSON (RFC 8785) of the unmasked arguments: evidence of what was sent that
 * does not disclose it. Arguments longer than the cap are left out (listed in `truncated`).
 */
import { hash } from 'node:crypto';
import { canonicalJson } from '../audit/canonical-json';
import type { McpCall } from './message';

/** The `mcp` member of a decision record. */
export interface McpAuditView {
  readonly kind: McpCall['kind'];
  readonly method: string | null;
  readonly id: string | number | null;
  readonly tool?: string;
  readonly name?: string;
  readonly uri?: string;
  readonly session: string | null;
  readonly protocol_version: string | null;
  /** The arguments after masking; absent when too long (then `truncated` lists it). */
  readonly arguments?: Record<string, unknown>;
  readonly arguments_sha256?: string;
  /** JSON pointers whose values were erased. */
  readonly masked?: readonly string[];
  readonly truncated?: readonly string[];
}

/** Longest canonical JSON of the (masked) arguments kept in a record, in characters. */
export const AUDIT_ARGUMENTS_CAP = 4096;
/** What a masked value becomes. */
export const MASKED = '[masked]';

/** Parses an RFC 6901 pointer into its reference tokens, or null when it is not one. */
export function parsePointer(pointer: string): string[] | null {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) return null;
  const tokens = pointer.slice(1).split('/');
  for (const t of tokens) if (/~[^01]|~$/.test(t)) return null;
  return tokens.map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * Pointers already parsed. A policy names the same few pointers on every call, and parsing
 * them twice per call (to check the mask, then to apply it) was 7 µs per 1 KB tools/call under
 * the profiler (docs/benchmarks.md, "MCP call cost — 2026-12-04"). Bounded: a policy that
 * makes up pointers per call empties it now and then, nothing more.
 */
const parsed = new Map<string, readonly string[] | null>();
const PARSED_MAX = 1024;

function pointerTokens(pointer: string): readonly string[] | null {
  let tokens = parsed.get(pointer);
  if (tokens === undefined) {
    if (parsed.size >= PARSED_MAX) parsed.clear();
    tokens = parsePointer(pointer);
    parsed.set(pointer, tokens === null ? null : Object.freeze(tokens));
  }
  return tokens;
}

/**
 * Reads the policy's `mask`: absent → []; an array of pointers → the pointers; anything else →
 * null (the caller then leaves every argument out: a broken mask must not leak what it meant to hide).
 */
export function maskListOf(value: unknown): string[] | null {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((p) => typeof p === 'string' && pointerTokens(p) !== null)) return null;
  return value as string[];
}

/** A shallow copy of one object or array on a masked path; an own "__proto__" member stays an own member. */
function shallowCopy(node: object): Record<string, unknown> | unknown[] {
  return Array.isArray(node) ? node.slice() : { ...(node as Record<string, unknown>) };
}

/**
 * Where `token` leads in `node`: an own member, or an array item. On the way to the last token an
 * array is indexed by Number(token); the last token must be a canonical index in range (as before
 * copy on write: the same pointers mask the same values). Returns the array index or member name.
 */
function child(node: object, token: string, last: boolean): { key: string | number; value: unknown } | null {
  if (Array.isArray(node)) {
    const idx = last ? (/^(0|[1-9][0-9]*)$/.test(token) ? Number(token) : -1) : Number(token);
    if (last ? idx < 0 || idx >= node.length : node[idx] === undefined) return null;
    return { key: idx, value: node[idx] };
  }
  return Object.hasOwn(node, token) ? { key: token, value: (node as Record<string, unknown>)[token] } : null;
}

/**
 * Erases the values at `pointers`; returns the result and the pointers that matched. `root` is
 * never changed: only the objects on a path that matched are copied (copy on write), so a mask
 * that matches nothing costs no copy. (The deep structuredClone this replaced was 26 µs of the
 * 57 µs mcpAuditView took per 1 KB tools/call under the profiler; docs/benchmarks.md, "MCP call
 * cost — 2026-12-04".)
 */
export function applyMask(root: Record<string, unknown>, pointers: readonly string[]): { value: Record<string, unknown>; masked: string[] } {
  let value = root;
  /** The containers of `value` that are already this call's copies. */
  const copies = new Set<object>();
  const masked: string[] = [];
  for (const p of pointers) {
    const tokens = pointerTokens(p);
    if (!tokens || tokens.length === 0) continue;
    // Find the path first, copying nothing: most pointers name an argument the call lacks.
    const path: object[] = [value];
    const keys: (string | number)[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const last = i === tokens.length - 1;
      const c = child(path[i], tokens[i], last);
      if (c === null) break;
      keys.push(c.key);
      if (last) break;
      if (c.value === null || typeof c.value !== 'object') break;
      path.push(c.value);
    }
    if (keys.length !== tokens.length) continue;
    // Copy the containers on the path that are still the caller's, linking each copy into its parent.
    for (let i = 0; i < path.length; i++) {
      if (!copies.has(path[i])) {
        path[i] = shallowCopy(path[i]);
        copies.add(path[i]);
      }
      if (i === 0) value = path[0] as Record<string, unknown>;
      else setMember(path[i - 1], keys[i - 1], path[i]);
    }
    setMember(path[path.length - 1], keys[keys.length - 1], MASKED);
    if (!masked.includes(p)) masked.push(p);
  }
  return { value, masked };
}

/** Sets a member of one of this call's copies. */
function setMember(node: object, key: string | number, v: unknown): void {
  if (Array.isArray(node)) node[key as number] = v;
  // defineProperty, not assignment: an own "__proto__" member must be replaced, not routed to the setter.
  else Object.defineProperty(node, key, { value: v, enumerable: true, writable: true, configurable: true });
}

/** Builds the `mcp` member of a decision record; `mask` is the policy's `mask` (or undefined). */
export function mcpAuditView(call: McpCall, session: string | null, mask: unknown): McpAuditView {
  const base = {
    kind: call.kind,
    method: call.method,
    id: call.id,
    ...(call.tool !== null ? { tool: call.tool } : {}),
    ...(call.name !== null ? { name: call.name } : {}),
    ...(call.uri !== null ? { uri: call.uri } : {}),
    session,
    protocol_version: call.protocolVersion,
  };
  if (call.arguments === null) return base;
  const unmasked = canonicalJson(call.arguments);
  // One-shot hash(): a Hash object (construct, update, digest) was 25 µs per call under the
  // profiler, the largest part of this function once masking stopped copying.
  const digest = hash('sha256', unmasked, 'hex');
  const pointers = maskListOf(mask);
  if (pointers === null) {
    // The policy's mask is malformed: keep nothing of the arguments but their digest.
    return { ...base, arguments_sha256: digest, masked: ['/arguments'] };
  }
  // The common case, nothing to mask, records the parsed arguments as they are: no copy, no second serialisation.
  const { value, masked } = pointers.length ? applyMask({ arguments: call.arguments }, pointers) : { value: { arguments: call.arguments }, masked: [] };
  const args = value.arguments as Record<string, unknown>;
  const tooLong = (masked.length ? canonicalJson(args) : unmasked).length > AUDIT_ARGUMENTS_CAP;
  return {
    ...base,
    ...(tooLong ? {} : { arguments: args }),
    arguments_sha256: digest,
    ...(masked.length ? { masked } : {}),
    ...(tooLong ? { truncated: ['arguments'] } : {}),
  };
}

/**
 * What an MCP call puts in its audit record: method, tool, name or uri, session, and the tool
 * arguments after the policy's masking. The policy may return `mask: ["/arguments/card_number"]`
 * (RFC 6901 JSON pointers, rooted at this record's `mcp` object); each value found there is
 * replaced by "[masked]" and its pointer listed in `masked`. `arguments_sha256` is the SHA-256
 * of the canonical JSON (RFC 8785) of the unmasked arguments: evidence of what was sent that
 * does not disclose it. Arguments longer than the cap are left out (listed in `truncated`).
 */
import { createHash } from 'node:crypto';
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
 * Reads the policy's `mask`: absent → []; an array of pointers → the pointers; anything else →
 * null (the caller then leaves every argument out: a broken mask must not leak what it meant to hide).
 */
export function maskListOf(value: unknown): string[] | null {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((p) => typeof p === 'string' && parsePointer(p) !== null)) return null;
  return value as string[];
}

/** Erases the values at `pointers` in a copy of `root`; returns the copy and the pointers that matched. */
export function applyMask(root: Record<string, unknown>, pointers: readonly string[]): { value: Record<string, unknown>; masked: string[] } {
  const value = structuredClone(root);
  const masked: string[] = [];
  for (const p of pointers) {
    const tokens = parsePointer(p);
    if (!tokens || tokens.length === 0) continue;
    let node: unknown = value;
    for (let i = 0; i < tokens.length - 1 && node !== null && typeof node === 'object'; i++) {
      node = Array.isArray(node) ? node[Number(tokens[i])] : Object.hasOwn(node, tokens[i]) ? (node as Record<string, unknown>)[tokens[i]] : undefined;
    }
    const last = tokens[tokens.length - 1];
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      const idx = /^(0|[1-9][0-9]*)$/.test(last) ? Number(last) : -1;
      if (idx < 0 || idx >= node.length) continue;
      node[idx] = MASKED;
    } else {
      if (!Object.hasOwn(node, last)) continue;
      // defineProperty, not assignment: an own "__proto__" member must be replaced, not routed to the setter.
      Object.defineProperty(node, last, { value: MASKED, enumerable: true, writable: true, configurable: true });
    }
    if (!masked.includes(p)) masked.push(p);
  }
  return { value, masked };
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
  const digest = createHash('sha256').update(unmasked).digest('hex');
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

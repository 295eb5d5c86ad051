/**
 * Audit record shapes. Every line of a segment is one JSON object; `seq` and `prev` (the
 * SHA-256 of the previous line's bytes) are added by the writer and chain the file.
 * docs/audit.md documents each field.
 */

import type { McpAuditView } from '../mcp/audit-view';

/** What a shadow policy would have decided on a call. */
export interface ShadowVerdict {
  readonly revision: string;
  readonly allow: boolean;
  readonly reasons: readonly string[];
  /** Set when the shadow failed to decide (then allow is false). */
  readonly error?: string;
}

/** The decision taken on a call, written (durably) before anything is forwarded. */
export interface DecisionRecord {
  readonly type: 'decision';
  readonly time: string;
  readonly decision_id: string;
  readonly agent: string | null;
  /** Whom the agent acts for (a token's `on_behalf_of_claim`); absent when no one. */
  readonly on_behalf_of?: string;
  readonly route: string | null;
  readonly method: string;
  /** Canonical path and query; cut at 4096 characters (then `truncated` and `path_sha256`). */
  readonly path: string;
  /** Fields cut to keep the record bounded; each keeps a `<field>_sha256` of its full value. */
  readonly truncated?: readonly string[];
  readonly path_sha256?: string;
  /** Size and SHA-256 of the request body, never its content. */
  readonly body?: { readonly bytes: number; readonly sha256: string };
  readonly decision: 'allow' | 'deny';
  readonly reasons: readonly string[];
  /** Error code for a deny (PC_POLICY_DENIED, PC_BAD_PATH, ...); absent on allow. */
  readonly code?: string;
  /** HTTP status returned when the gateway answered itself (every deny). */
  readonly status?: number;
  readonly policy_revision: string | null;
  /** Name of the credential attached (allow only); never its value. */
  readonly credential: string | null;
  /** Keyed fingerprint of the value attached (`hmac:<16 hex>`), comparable with credential_rotated records; never the value. */
  readonly credential_fingerprint?: string;
  /** The scopes of the token attached (OAuth types). */
  readonly credential_scopes?: readonly string[];
  /** MCP routes: the call as the policy saw it, arguments masked (src/mcp/audit-view.ts). */
  readonly mcp?: McpAuditView;
  /** The policy input as the policy saw it, less what input_omitted lists (src/audit/recorded-input.ts); absent when the call never reached the policy. */
  readonly input?: Record<string, unknown>;
  /** JSON pointers into input of what was not recorded (a REST body, masked arguments). */
  readonly input_omitted?: readonly string[];
  /** The shadow policy's verdict on the same input (docs/policy.md, Shadow policies); it changed nothing. */
  readonly shadow?: ShadowVerdict;
  /** False on a dry-run route: the verdict was recorded, not enforced (a deny was forwarded). Absent: enforced. */
  readonly enforced?: false;
}

/** What happened after an allowed call was forwarded. */
export interface OutcomeRecord {
  readonly type: 'outcome';
  readonly time: string;
  readonly decision_id: string;
  /** Upstream status, or the gateway's own status when the upstream failed. */
  readonly status: number;
  readonly latency_ms: number;
  /** Error code when the upstream failed or the client went away. */
  readonly code?: string;
}

/** Gateway life-cycle events: start, stop, policy changes, recovery. */
export interface LifecycleRecord {
  readonly type:
    | 'gateway_start'
    | 'gateway_stop'
    | 'policy_loaded'
    | 'policy_rejected'
    | 'config_loaded'
    | 'config_rejected'
    | 'recovered_torn_tail'
    | 'audit_recovered';
  readonly time: string;
  readonly [field: string]: unknown;
}

/**
 * A credential's value changed while the gateway runs (a rotated secret file, a new client
 * certificate, docs/credentials.md): the new and the previous value by keyed fingerprint, the
 * same `hmac:<16 hex>` the decision records' `credential_fingerprint` carries. Never a value.
 */
export interface CredentialRotatedRecord {
  readonly type: 'credential_rotated';
  readonly time: string;
  readonly credential: string;
  readonly credential_type: string;
  readonly fingerprint: string;
  readonly previous_fingerprint: string;
  /** How long the previous value is still masked in answers (s); null for a client certificate. */
  readonly grace_s: number | null;
}

/**
 * Written by a writer that found the directory's lock left by a writer that died holding it
 * (kill -9, OOM kill, power loss): the kernel released the lock, and the trail names who held it.
 */
export interface WriterTakeoverRecord {
  readonly type: 'writer_takeover';
  readonly time: string;
  /** The lock file's record of the dead writer (pid, host, pid_ns, boot_id, started_at, epoch), or `{pid, format: 'pid-file'}` from a version that kept only a pid. */
  readonly previous: Readonly<Record<string, unknown>>;
  /** This writer's epoch: the previous one's plus one. */
  readonly epoch: number;
  readonly pid: number;
  /** How long the start waited for the kernel to release the lock. */
  readonly waited_ms: number;
}

/**
 * A signed checkpoint: `note` is a C2SP signed note whose text is a tlog checkpoint (origin,
 * `size`, base64 `root`) committing to the RFC 6962 Merkle root of records 1..size, where size is
 * this record's seq − 1. `size`, `root` and `key_id` repeat the note's content for jq.
 */
export interface CheckpointRecord {
  readonly type: 'checkpoint';
  readonly time: string;
  readonly size: number;
  readonly root: string;
  readonly key_id: string;
  readonly note: string;
  /**
   * The Merkle tree's perfect-subtree roots at `size` (base64, largest first): lets the writer
   * resume from the last checkpoint instead of rehashing the whole trail. Covered by the chain
   * and checked by verify.
   */
  readonly frontier: readonly string[];
}

/** The first record of every segment after the first: commits to the segment before it. */
export interface SegmentStartRecord {
  readonly type: 'segment_start';
  readonly time: string;
  readonly segment: string;
  readonly previous: { readonly file: string; readonly last_seq: number; readonly last_hash: string; readonly sha256: string } | null;
}

/** Written when the checkpoint signing key differs from the one that signed the last checkpoint. */
export interface SigningKeyRecord {
  readonly type: 'signing_key';
  readonly time: string;
  readonly key_id: string;
  readonly public_key: string;
  readonly previous_key_id: string | null;
}

/** Anything the writer appends. */
export type AuditEvent =
  | DecisionRecord
  | OutcomeRecord
  | LifecycleRecord
  | CredentialRotatedRecord
  | WriterTakeoverRecord
  | CheckpointRecord
  | SegmentStartRecord
  | SigningKeyRecord;

/** A line as written: the event with its chain fields first. */
export type ChainedRecord = { readonly seq: number; readonly prev: string } & AuditEvent;

/** The `prev` of the first record of a new trail. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Serialises a record to its line (no trailing newline). JSON.stringify escapes control
 * characters (newlines, ANSI escapes); U+2028/U+2029 are escaped too so no tool splits a line.
 */
export function serializeRecord(record: ChainedRecord): string {
  return JSON.stringify(record).replace(/[\u2028\u2029]/g, (c) => (c === '\u2028' ? '\\u2028' : '\\u2029'));
}

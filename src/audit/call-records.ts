/**
 * The records of one call: its decision (written durably before anything is forwarded, or with
 * the refusal) and its outcome (written once, after the answer ended). Built from plain facts
 * the proxy gathers (src/proxy/context.ts `callFacts`), so the audit module knows nothing of the
 * pipeline.
 */
import { hash } from 'node:crypto';
import type { McpAuditView } from '../mcp/audit-view';
import type { DecisionRecord, OutcomeRecord, ShadowVerdict } from './record';
import type { RecordedInput } from './recorded-input';

/** Longest path (with query) kept verbatim in a decision record; longer ones are cut, flagged and digested. */
export const AUDIT_PATH_CAP = 4096;

/** What a decision record says of the call itself. */
export interface CallFacts {
  readonly time: string;
  readonly decisionId: string;
  readonly agent: string | null;
  /** Whom the agent acts for (its identity's `on_behalf_of`), when it said. */
  readonly onBehalfOf?: string | null;
  readonly route: string | null;
  readonly method: string;
  /** The canonical path and query as forwarded; before routing, the raw target. */
  readonly path: string;
  /** The request body (recorded by size and digest only). */
  readonly body: Buffer;
  readonly policyRevision: string | null;
  readonly mcp?: McpAuditView;
  /** The shadow policy's verdict, when the route has one and the call reached the policy. */
  readonly shadow?: ShadowVerdict;
  /** The route runs in dry_run mode. */
  readonly dryRun?: boolean;
  /** The policy input as recorded (recorded-input.ts), when the call reached the policy. */
  readonly input?: RecordedInput;
}

/** The decision record of a call: its facts, plus the verdict. */
export function decisionRecord(
  facts: CallFacts,
  verdict: Pick<DecisionRecord, 'decision' | 'reasons' | 'credential' | 'credential_fingerprint' | 'credential_scopes' | 'code' | 'status'>,
): DecisionRecord {
  const fullPath = facts.path;
  const capped = fullPath.length > AUDIT_PATH_CAP;
  return {
    type: 'decision',
    time: facts.time,
    decision_id: facts.decisionId,
    agent: facts.agent,
    ...(facts.onBehalfOf ? { on_behalf_of: facts.onBehalfOf } : {}),
    route: facts.route,
    method: facts.method,
    path: capped ? fullPath.slice(0, AUDIT_PATH_CAP) : fullPath,
    ...(capped ? { truncated: ['path'], path_sha256: hash('sha256', fullPath, 'hex') } : {}),
    // The body is evidence by digest only: its content may hold secrets and can be megabytes.
    ...(facts.body.length ? { body: { bytes: facts.body.length, sha256: hash('sha256', facts.body, 'hex') } } : {}),
    decision: verdict.decision,
    reasons: verdict.reasons,
    ...(verdict.code ? { code: verdict.code, ...(verdict.status !== undefined ? { status: verdict.status } : {}) } : {}),
    policy_revision: facts.policyRevision,
    credential: verdict.credential,
    ...(verdict.credential_fingerprint ? { credential_fingerprint: verdict.credential_fingerprint } : {}),
    ...(verdict.credential_scopes ? { credential_scopes: verdict.credential_scopes } : {}),
    ...(facts.mcp ? { mcp: facts.mcp } : {}),
    ...(facts.input ? { input: facts.input.input, ...(facts.input.omitted ? { input_omitted: facts.input.omitted } : {}) } : {}),
    ...(facts.shadow ? { shadow: facts.shadow } : {}),
    ...(facts.dryRun ? { enforced: false as const } : {}),
  };
}

/** The outcome record of a forwarded call. */
export function outcomeRecord(decisionId: string, status: number, latencyMs: number, code?: string): OutcomeRecord {
  return { type: 'outcome', time: new Date().toISOString(), decision_id: decisionId, status, latency_ms: latencyMs, ...(code ? { code } : {}) };
}

/**
 * Decision records as OCSF events: API Activity (class 6003, Application Activity category)
 * with the Security Control profile (allowed/denied, the policy) and the Record Integrity profile
 * (an attestation). Target: OCSF 1.9.0. docs/audit-query.md has the field-by-field mapping;
 * test/fixtures/ocsf-api-activity.ts lists the schema's required attributes and where they were read.
 *
 * Two kinds of integrity data travel with each event, and they prove different things:
 * - the trail's own chain: `raw_data_hash` is the SHA-256 of the record's exact line (the next
 *   record's `prev`), `metadata.sequence` is its `seq`, and `unmapped.portcullis` has `prev`, the
 *   segment file and line, so every event leads back to a line `portcullis audit verify` checks;
 * - an export chain in `attestation_list[0]`: a fingerprint of this OCSF event's RFC 8785 canonical
 *   form, and `prev_event` naming the previous exported event and its fingerprint, so a SIEM can
 *   tell that no event of the export was altered, dropped or reordered. Unsigned (no signatures):
 *   it detects alteration in transit or storage, not a forger who recomputes the chain.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { canonicalJson } from '../canonical-json';
import type { QueryHit } from './query';

/** The OCSF schema version the events follow. */
export const OCSF_VERSION = '1.9.0';
/** API Activity. */
export const OCSF_CLASS_UID = 6003;
/** Application Activity. */
export const OCSF_CATEGORY_UID = 6;

/** activity_id of API Activity by HTTP method (CRUD); anything else is Other (99). */
const ACTIVITY: Record<string, [number, string]> = {
  POST: [1, 'Create'],
  GET: [2, 'Read'],
  HEAD: [2, 'Read'],
  PUT: [3, 'Update'],
  PATCH: [3, 'Update'],
  DELETE: [4, 'Delete'],
};

/** State carried from one exported event to the next. */
export interface OcsfChain {
  /** attestation.chain_uid: one chain per export run. */
  readonly uid: string;
  /** The previous exported event (none for the first). */
  prev: { readonly uid: string; readonly type_uid: number; readonly fingerprint: string } | null;
}

/** What the mapper needs besides the record. */
export interface OcsfContext {
  /** Version of the gateway that wrote the record (from the latest gateway_start), if known. */
  readonly productVersion: string | null;
  /** Include the record's line as `raw_data`. */
  readonly rawData: boolean;
  readonly chain: OcsfChain;
}

/** SHA-256 (hex) of a line's bytes: what the next record's `prev` holds. */
export function lineHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

// Members are written in code-unit order throughout, so canonicalJson reuses the objects as built.
const sha256Fingerprint = (value: string, serialization: [number, string]) => ({
  algorithm: 'SHA-256',
  algorithm_id: 3,
  serialization: serialization[1],
  serialization_id: serialization[0],
  value,
});
const FLAT: [number, string] = [1, 'Flat'];
const JCS: [number, string] = [2, 'JCS'];

/** Maps one decision record to an OCSF API Activity event and advances the export chain. */
export function toOcsf(hit: QueryHit, ctx: OcsfContext): Record<string, unknown> {
  const r = hit.record;
  const allow = r.decision === 'allow';
  const method = typeof r.method === 'string' ? r.method.toUpperCase() : '';
  const pathText = typeof r.path === 'string' ? r.path : '';
  const [activityId, activityName] = ACTIVITY[method] ?? [99, 'Other'];
  const agent = typeof r.agent === 'string' ? r.agent : null;
  const route = typeof r.route === 'string' ? r.route : null;
  const reasons = Array.isArray(r.reasons) ? r.reasons.filter((x): x is string => typeof x === 'string') : [];
  const code = typeof r.code === 'string' ? r.code : null;
  const mcp = r.mcp as { tool?: unknown; method?: unknown } | undefined;
  const tool = mcp && typeof mcp.tool === 'string' ? mcp.tool : null;
  const decisionId = String(r.decision_id);
  const status = typeof r.status === 'number' ? r.status : (hit.outcome?.status ?? null);
  const typeUid = OCSF_CLASS_UID * 100 + activityId;
  const time = Date.parse(String(r.time));
  const who = agent ?? 'unidentified';
  const operation = tool ? `tools/call ${tool}` : `${method} ${pathText}`;

  const attestation: Record<string, unknown> = {
    chain_uid: ctx.chain.uid,
    ...(ctx.chain.prev
      ? { prev_event: { fingerprint: sha256Fingerprint(ctx.chain.prev.fingerprint, JCS), type_uid: ctx.chain.prev.type_uid, uid: ctx.chain.prev.uid } }
      : {}),
  };
  const event: Record<string, unknown> = {
    action: allow ? 'Allowed' : 'Denied',
    action_id: allow ? 1 : 2,
    activity_id: activityId,
    activity_name: activityName,
    actor: { user: agent ? { name: agent, type: 'AI agent', type_id: 99, uid: agent } : { name: who, type: 'Unknown', type_id: 0 } },
    api: { operation, request: { uid: decisionId }, ...(route ? { service: { name: route } } : {}) },
    attestation_list: [attestation],
    category_name: 'Application Activity',
    category_uid: OCSF_CATEGORY_UID,
    class_name: 'API Activity',
    class_uid: OCSF_CLASS_UID,
    disposition: allow ? 'Allowed' : 'Blocked',
    disposition_id: allow ? 1 : 2,
    http_request: { http_method: method, url: { path: pathText } },
    ...(status !== null ? { http_response: { code: status } } : {}),
    is_alert: false,
    message: `${allow ? 'Allowed' : 'Denied'} ${operation} by ${who}${route ? ` on route ${route}` : ''}${reasons.length ? `: ${reasons.join('; ')}` : ''}`,
    metadata: {
      log_name: 'audit',
      log_provider: 'portcullis',
      original_event_uid: decisionId,
      original_time: r.time,
      product: { name: 'Portcullis', vendor_name: 'Portcullis', ...(ctx.productVersion ? { version: ctx.productVersion } : {}) },
      profiles: ['security_control', 'record_integrity'],
      sequence: r.seq,
      uid: decisionId,
      version: OCSF_VERSION,
    },
    // Only a call that reached the policy had one applied (its record names the revision).
    policy: {
      is_applied: typeof r.policy_revision === 'string' && r.policy_revision !== 'none',
      name: 'portcullis',
      ...(typeof r.policy_revision === 'string' ? { uid: r.policy_revision } : {}),
    },
    ...(ctx.rawData ? { raw_data: hit.source.text } : {}),
    raw_data_hash: sha256Fingerprint(lineHash(hit.source.text), FLAT),
    // A deny is the control working as intended: noteworthy (Low), not an incident.
    severity: allow ? 'Informational' : 'Low',
    severity_id: allow ? 1 : 2,
    // Portcullis records no client address; the agent identity is the endpoint's only name.
    src_endpoint: { name: who },
    status: allow ? 'Success' : 'Failure',
    ...(code ? { status_code: code } : {}),
    ...(reasons.length ? { status_detail: reasons.join('; ') } : {}),
    status_id: allow ? 1 : 2,
    time,
    type_name: `API Activity: ${activityName}`,
    type_uid: typeUid,
    unmapped: {
      portcullis: {
        credential: r.credential ?? null,
        line: hit.source.line,
        ...(typeof r.on_behalf_of === 'string' ? { on_behalf_of: r.on_behalf_of } : {}),
        ...(mcp ? { mcp } : {}),
        ...(hit.outcome ? { outcome: hit.outcome } : {}),
        prev: r.prev,
        reasons,
        segment: path.basename(hit.source.file),
        seq: r.seq,
      },
    },
  };
  // The fingerprint covers the whole event, attestation included, except itself (OCSF 1.9).
  const fingerprint = createHash('sha256').update(canonicalJson(event), 'utf8').digest('hex');
  attestation.fingerprint = sha256Fingerprint(fingerprint, JCS);
  ctx.chain.prev = { uid: decisionId, type_uid: typeUid, fingerprint };
  return event;
}

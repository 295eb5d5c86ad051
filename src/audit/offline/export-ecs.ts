/**
 * Decision records as Elastic Common Schema documents (for Elastic, and any SIEM that reads ECS):
 * `event.category: ["api"]` with `event.type` allowed/denied, the policy's code and reasons as
 * `rule.*`, the agent as `user.*`. Fields ECS has no place for (the trail's chain data, the
 * credential name, whom the agent acts for) go under `portcullis.*`, a custom field set, as ECS recommends.
 */
import path from 'node:path';
import { lineHash } from './export-ocsf';
import type { QueryHit } from './query';

/** The ECS version the documents follow. */
export const ECS_VERSION = '9.0.0';

/** Maps one decision record to an ECS document. */
export function toEcs(hit: QueryHit, productVersion: string | null): Record<string, unknown> {
  const r = hit.record;
  const allow = r.decision === 'allow';
  const reasons = Array.isArray(r.reasons) ? r.reasons.filter((x): x is string => typeof x === 'string') : [];
  const code = typeof r.code === 'string' ? r.code : null;
  const agent = typeof r.agent === 'string' ? r.agent : null;
  const route = typeof r.route === 'string' ? r.route : null;
  const mcp = r.mcp as { tool?: unknown } | undefined;
  const status = typeof r.status === 'number' ? r.status : (hit.outcome?.status ?? null);
  const hash = lineHash(hit.source.text);
  return {
    '@timestamp': r.time,
    ecs: { version: ECS_VERSION },
    message: `${allow ? 'allowed' : 'denied'} ${String(r.method)} ${String(r.path)} by ${agent ?? 'unidentified agent'}`,
    event: {
      kind: 'event',
      category: ['api'],
      type: [allow ? 'allowed' : 'denied'],
      outcome: allow ? 'success' : 'failure',
      action: allow ? 'api-call-allowed' : 'api-call-denied',
      id: r.decision_id,
      sequence: r.seq,
      // ECS: "hash of the raw field to demonstrate log integrity"; here of the trail line.
      hash,
      dataset: 'portcullis.audit',
      module: 'portcullis',
      provider: 'portcullis',
      ...(reasons.length ? { reason: reasons.join('; ') } : {}),
      ...(hit.outcome ? { duration: Math.round(hit.outcome.latency_ms * 1e6) } : {}),
    },
    rule: {
      id: code ?? (allow ? 'allow' : 'deny'),
      name: reasons.length ? reasons.join('; ') : (code ?? r.decision),
      ruleset: 'portcullis',
      ...(typeof r.policy_revision === 'string' ? { version: r.policy_revision } : {}),
    },
    ...(agent ? { user: { id: agent, name: agent } } : {}),
    ...(route ? { service: { name: route } } : {}),
    url: { path: r.path },
    http: { request: { method: r.method, id: r.decision_id }, ...(status !== null ? { response: { status_code: status } } : {}) },
    observer: { product: 'Portcullis', vendor: 'Portcullis', type: 'gateway', ...(productVersion ? { version: productVersion } : {}) },
    labels: {
      ...(typeof r.policy_revision === 'string' ? { policy_revision: r.policy_revision } : {}),
      ...(typeof r.credential === 'string' ? { credential: r.credential } : {}),
    },
    portcullis: {
      seq: r.seq,
      prev: r.prev,
      hash,
      segment: path.basename(hit.source.file),
      line: hit.source.line,
      decision: r.decision,
      reasons,
      policy_revision: r.policy_revision ?? null,
      credential: r.credential ?? null,
      ...(typeof r.on_behalf_of === 'string' ? { on_behalf_of: r.on_behalf_of } : {}),
      ...(code ? { code } : {}),
      ...(hit.outcome ? { outcome: hit.outcome } : {}),
      ...(mcp ? { mcp } : {}),
    },
  };
}

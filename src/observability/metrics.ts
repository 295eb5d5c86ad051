/** Prometheus metrics, one registry per gateway (so tests can run gateways side by side). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CredentialHealth } from '../credential-injector/provider';

/** The `route` label of a call that matched no route (route names cannot contain parentheses). */
export const NO_ROUTE = '(none)';

/** The gateway's metrics. */
export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'route'>;
  readonly decisions: Counter<'route' | 'decision' | 'code'>;
  readonly policyEvalSeconds: Histogram<never>;
  readonly upstreamSeconds: Histogram<'route' | 'status_class'>;
  readonly upstreamErrors: Counter<'route' | 'code'>;
  readonly auditHealthy: Gauge<never>;
  readonly auditFailures: Counter<never>;
  readonly policyReloads: Counter<'result'>;
  /** Failed polls of the policy bundle server, by cause (bundle-service.ts codes). */
  readonly policyBundleErrors: Counter<'code'>;
  /** Configuration reloads by result (loaded, rejected). */
  readonly configReloads: Counter<'result'>;
  /** 1 while the policy's files on disk are not the policy in force (docs/policy.md, drift). */
  readonly policyDrift: Gauge<never>;
  /** 1 for the revision in force and the revision on disk (`unreadable` when it cannot be read). */
  readonly policyRevision: Gauge<'state' | 'revision'>;
  /** Changes the poll found that no file watch had reported, and directories that could not be watched. */
  readonly policyWatchGaps: Counter<'cause'>;
  /** Shadow verdicts by route, agreeing with the enforcing policy or not (docs/policy.md, Shadow policies). */
  readonly policyShadow: Counter<'route' | 'agreement'>;
  readonly inFlight: Gauge<never>;
  readonly secretsMasked: Counter<'route'>;
  readonly headersDropped: Counter<'route'>;
  readonly memoryPressure: Gauge<never>;
  /** Registers the upstream credentials' health (src/credential-injector/provider.ts), read at each scrape. */
  watchCredentials(health: () => readonly CredentialHealth[]): void;
  /** Audit sinks (src/audit/sinks/sink-runner.ts). */
  readonly auditSink: { readonly deliveredSeq: Gauge<'sink'>; readonly lagRecords: Gauge<'sink'>; readonly errors: Counter<'sink'> };
}

/** Creates the metrics. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'portcullis_process_' });
  const reg = { registers: [registry] };
  return {
    registry,
    requests: new Counter({ name: 'portcullis_requests_total', help: 'Calls received, by route.', labelNames: ['route'], ...reg }),
    decisions: new Counter({
      name: 'portcullis_decisions_total',
      help: 'Decisions by route ("(none)" when the call matched no route), result (allow, deny, dry_run_deny: denied and forwarded on a dry-run route) and error code ("" on allow).',
      labelNames: ['route', 'decision', 'code'],
      ...reg,
    }),
    policyEvalSeconds: new Histogram({
      name: 'portcullis_policy_eval_seconds',
      help: 'Policy evaluation time.',
      buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05],
      ...reg,
    }),
    upstreamSeconds: new Histogram({
      name: 'portcullis_upstream_latency_seconds',
      help: 'Time to upstream response headers.',
      labelNames: ['route', 'status_class'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      ...reg,
    }),
    upstreamErrors: new Counter({
      name: 'portcullis_upstream_errors_total',
      help: 'Upstream failures by route and code.',
      labelNames: ['route', 'code'],
      ...reg,
    }),
    auditHealthy: new Gauge({ name: 'portcullis_audit_healthy', help: '1 when the audit log is writable; 0 while calls are refused.', ...reg }),
    auditFailures: new Counter({ name: 'portcullis_audit_write_failures_total', help: 'Failed audit writes.', ...reg }),
    policyShadow: new Counter({
      name: 'portcullis_policy_shadow_total',
      help: 'Calls judged by a shadow policy, by route and whether its allow agreed with the enforcing policy ("agree", "disagree").',
      labelNames: ['route', 'agreement'],
      ...reg,
    }),
    policyBundleErrors: new Counter({
      name: 'portcullis_policy_bundle_errors_total',
      help: 'Failed polls of the policy bundle server, by cause (the policy in force stays).',
      labelNames: ['code'],
      ...reg,
    }),
    configReloads: new Counter({
      name: 'portcullis_config_reloads_total',
      help: 'Configuration reloads by result (loaded, rejected).',
      labelNames: ['result'],
      ...reg,
    }),
    policyReloads: new Counter({ name: 'portcullis_policy_reloads_total', help: 'Policy reloads by result.', labelNames: ['result'], ...reg }),
    policyDrift: new Gauge({
      name: 'portcullis_policy_drift',
      help: '1 while the policy files on disk are not the policy in force (a rejected change, or one not loaded yet).',
      ...reg,
    }),
    policyRevision: new Gauge({
      name: 'portcullis_policy_revision_info',
      help: 'The policy revision in force and the revision on disk (state="in_force"|"on_disk"); always 1.',
      labelNames: ['state', 'revision'],
      ...reg,
    }),
    policyWatchGaps: new Counter({
      name: 'portcullis_policy_watch_gaps_total',
      help: 'Policy changes found by the content-hash poll that no file watch reported (cause="poll"), and directories that could not be watched (cause="watch_failed").',
      labelNames: ['cause'],
      ...reg,
    }),
    inFlight: new Gauge({ name: 'portcullis_in_flight_requests', help: 'Calls being handled.', ...reg }),
    secretsMasked: new Counter({
      name: 'portcullis_response_secrets_masked_total',
      help: 'Responses in which a credential value was masked.',
      labelNames: ['route'],
      ...reg,
    }),
    headersDropped: new Counter({
      name: 'portcullis_response_headers_dropped_total',
      help: 'Upstream response headers dropped because their name held a credential value.',
      labelNames: ['route'],
      ...reg,
    }),
    memoryPressure: new Gauge({ name: 'portcullis_memory_pressure', help: '1 while memory is short and new calls are refused (PC_OVERLOADED).', ...reg }),
    watchCredentials(health) {
      // Totals kept by the providers, copied at each scrape (no per-call metric work).
      const counter = (name: string, help: string, of: (h: CredentialHealth) => number) =>
        new Counter({
          name,
          help,
          labelNames: ['credential', 'type'],
          ...reg,
          collect() {
            this.reset();
            for (const h of health()) this.inc({ credential: h.name, type: h.type }, of(h));
          },
        });
      counter('portcullis_credential_fetches_total', 'Fetches of a credential (token requests, file reads).', (h) => h.fetches);
      counter('portcullis_credential_cache_hits_total', 'Calls given a credential from the cache.', (h) => h.cacheHits);
      counter('portcullis_credential_failures_total', 'Failed fetches of a credential.', (h) => h.failures);
      new Gauge({
        name: 'portcullis_credential_expires_in_seconds',
        help: 'Seconds until the cached credential expires (credentials that expire only).',
        labelNames: ['credential', 'type'],
        ...reg,
        collect() {
          this.reset();
          for (const h of health()) if (h.expiresInS !== null) this.set({ credential: h.name, type: h.type }, h.expiresInS);
        },
      });
      new Gauge({
        name: 'portcullis_credential_ok',
        help: '1 while the credential can be obtained; 0 after a failed fetch with nothing usable cached.',
        labelNames: ['credential', 'type'],
        ...reg,
        collect() {
          this.reset();
          for (const h of health()) this.set({ credential: h.name, type: h.type }, h.ok ? 1 : 0);
        },
      });
    },
    auditSink: {
      deliveredSeq: new Gauge({
        name: 'portcullis_audit_sink_delivered_seq',
        help: "Seq of the last audit record the sink's receiver acknowledged.",
        labelNames: ['sink'],
        ...reg,
      }),
      lagRecords: new Gauge({
        name: 'portcullis_audit_sink_lag_records',
        help: 'Durable audit records the sink has not delivered yet.',
        labelNames: ['sink'],
        ...reg,
      }),
      errors: new Counter({ name: 'portcullis_audit_sink_errors_total', help: 'Failed delivery attempts (each is retried).', labelNames: ['sink'], ...reg }),
    },
  };
}

/**
 * Assembles a gateway from a validated config: policy store, audit writer, credential
 * bindings, forwarder, the agent listener running the pipeline, and the admin listener. Owns
 * start-up order (what can refuse first: signing key, policy, stdio servers, upstreams,
 * listeners; only then the trail) and graceful shutdown (stop accepting, drain in-flight calls,
 * record the stop, close the trail).
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type express from 'express';
import { createAdminApp, startAdminServer } from './admin/admin-server';
import { trailViewRoutes } from './audit/viewer/server';
import type { AuditEvent } from './audit/record';
import { parseSignerKey, type NoteSigner } from './audit/signed-note';
import { loadOrCreateSigner } from './audit/signing-key';
import { startAuditSinks, type AuditSinks } from './audit/sinks/audit-sinks';
import { openAuditWriter, type JsonlAuditWriter } from './audit/writer';
import type { BundleServiceConfig, GatewayConfig } from './config/types';
import { BundleService, displayUrl } from './policy/bundle-service';
import { brokerContext } from './credential-injector/broker-context';
import type { CredentialProvider } from './credential-injector/provider';
import { revealSecret } from './secret';
import { type EdgeAllowList, edgeAllowList } from './edge/allow-list';
import { bindListener } from './edge/listen';
import { agentTlsOptions, watchAgentTls } from './edge/tls';
import { loadConfig } from './config/load';
import { watchFileSet } from './config/file-watch';
import { ConfigError, GatewayError, toError } from './errors';
import { buildRuntime, type Runtime, type RuntimeContext, warnDryRun } from './gateway-runtime';
import { SessionTable } from './mcp/sessions';
import { createLogger } from './observability/logger';
import { createMetrics, type Metrics } from './observability/metrics';
import { BundleRefusedError } from './policy/bundle-refusal';
import { PolicyStore, type PolicyState, type PolicyStoreEvents } from './policy/policy-store';
import { highestAcceptedSerial } from './audit/policy-serial';
import { newContext } from './proxy/context';
import type { PipelineDeps } from './proxy/deps';
import { MemoryGuard } from './proxy/memory-guard';
import { createAgentListener } from './proxy/listener';
import { refuseConnect, refuseHttp09, refuseUnparsed } from './proxy/parser-refusal';
import { runCall } from './proxy/pipeline';
import { serveProtectedResourceMetadata } from './proxy/well-known';

/** Package version, recorded in gateway_start (src/ under ts-jest, dist/src/ when built). */
const VERSION: string = (() => {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(path.join(__dirname, rel), 'utf8')) as { version: string }).version;
    } catch {
      /* try the next */
    }
  }
  return 'unknown';
})();

/** Options beyond the config file (for embedding and tests). */
export interface GatewayOptions {
  readonly logger?: Logger;
  /** How long shutdown waits for in-flight calls. Default 10 s. */
  readonly drainMs?: number;
  /** How a reload reads the configuration. Default: loadConfig(config.file) with the process environment. */
  readonly loadConfig?: () => GatewayConfig;
  /** Reload when the configuration file changes (the CLI sets it; SIGHUP is the CLI's too). */
  readonly watchConfig?: boolean;
}

/** A running gateway. */
export interface Gateway {
  /** Agent-facing URL, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** Admin URL, or null when disabled. */
  readonly adminUrl: string | null;
  readonly metrics: Metrics;
  readonly policy: PolicyStore;
  readonly audit: JsonlAuditWriter;
  /** The routes' upstreams, as one (for leak tests and metrics). */
  readonly upstreams: { connectionCount(): number };
  /** The audit sinks (audit.sinks), running beside the request path. */
  readonly sinks: AuditSinks;
  /** The live MCP sessions of the MCP routes (for leak tests and the soak benchmark). */
  readonly mcpSessions: { readonly size: number };
  /** Loads the configuration file again and swaps it in if it is valid (README, Reload without restart). */
  reload(): Promise<ReloadOutcome>;
  /** Drains and stops. */
  close(): Promise<void>;
}

/** What a reload did. */
export interface ReloadOutcome {
  readonly result: 'loaded' | 'rejected' | 'unchanged';
  readonly error?: string;
}

/** One configuration in force, with the calls running on it. */
interface Generation {
  readonly runtime: Runtime;
  readonly deps: PipelineDeps;
  inFlight: number;
}

/** Parts of the configuration a reload cannot change: they are bound, opened or loaded once. */
const FIXED: readonly (keyof GatewayConfig)[] = ['listen', 'tls', 'admin', 'policy', 'audit', 'logLevel'];

/** Refuses a reload that changes what needs a restart, naming the key. */
function assertReloadable(running: GatewayConfig, next: GatewayConfig): void {
  for (const key of FIXED)
    if (JSON.stringify(running[key]) !== JSON.stringify(next[key]))
      throw new ConfigError(
        'CONFIG_RESTART_REQUIRED',
        { file: next.file, keyPath: String(key) },
        `${String(key)} cannot change without a restart (the running value stays)`,
      );
}

/** The bundle server's client, handing each new bundle to the store (which verifies, orders and compiles it). */
function bundleServiceFor(c: BundleServiceConfig, policy: PolicyStore, metrics: Metrics, log: Logger): BundleService {
  const url = displayUrl(c.url);
  return new BundleService(
    {
      url: c.url,
      minDelayS: c.minDelayS,
      maxDelayS: c.maxDelayS,
      token: c.token,
      tls: c.tls,
      persistDir: c.persistDir,
      timeoutMs: c.timeoutMs,
      maxBytes: c.maxBytes,
    },
    {
      onBundle: async (bytes) => {
        await policy.loadBundleBytes(bytes, url);
      },
      onError(err, meta) {
        metrics.policyBundleErrors.inc({ code: err.code });
        log.warn({ url: meta.url, code: err.code, during: meta.during, retry_in_ms: meta.retryInMs, err: err.message }, 'policy bundle server: no new bundle');
      },
    },
  );
}

/** SHA-256 of the configuration file as read at start, so the trail shows which config ran. */
function configDigest(file: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return null; // an embedded configuration
  }
}

/** The configured checkpoint signer, parsed before anything starts; a bad key is a config error at its line. */
function configuredSigner(config: GatewayConfig): NoteSigner | null {
  const key = config.audit.signingKey;
  if (!key) return null;
  try {
    return parseSignerKey(revealSecret(key.secret));
  } catch (err) {
    throw new ConfigError('CONFIG_SIGNING_KEY', key.where, `the key from ${key.secret.source} is unusable: ${(err as Error).message}`);
  }
}

/** The /readyz view of the upstream credentials: health only, never a value (not a readiness condition: a token endpoint down affects every replica alike). */
function credentialDetail(providers: ReadonlyMap<string, CredentialProvider>): Record<string, unknown>[] {
  return [...providers.values()].map((p) => {
    const h = p.health();
    return {
      name: h.name,
      type: h.type,
      ok: h.ok,
      fetches: h.fetches,
      cache_hits: h.cacheHits,
      failures: h.failures,
      expires_in_s: h.expiresInS,
      last_error: h.lastError,
    };
  });
}

/** The /readyz view of the policy: the revision in force against the revision on disk. */
function policyDetail(state: PolicyState): Record<string, unknown> {
  const r = state.lastRejection;
  return {
    in_force: state.inForce,
    on_disk: state.onDisk,
    drift: state.drift,
    last_rejection: r && { revision: r.revision, time: r.time, error: r.error.slice(0, 2000) },
  };
}

/**
 * Starts a gateway. Everything that can refuse a start (the signing key, the policy, the stdio
 * commands, the upstreams, the listen addresses) is checked before the trail is touched, so a
 * failed start generates no signing key and writes no record; it rejects after closing what it
 * had started.
 */
export async function startGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  if (!config.secretsLoaded) throw new Error('this configuration was loaded without its secrets (secrets: "skip"); a gateway cannot run on it');
  const log = options.logger ?? createLogger(config.logLevel);
  const metrics = createMetrics();
  const closers: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const c of closers.reverse()) await c();
  };
  // Records of what happens before the trail is open (the first policy load) wait here.
  let audit: JsonlAuditWriter | null = null;
  const early: AuditEvent[] = [];
  const record = (event: AuditEvent) => {
    if (audit) audit.append(event).catch(() => undefined);
    else early.push(event);
  };
  let generatedKey: string | null = null;
  /** An outage whose audit_recovered record could not be written yet (audit-faults.test.ts). */
  let unrecordedOutage: { since: string; refused: number } | null = null;
  // The listeners are bound before the trail is opened, so a port in use refuses the start
  // before anything is written. A call that arrives meanwhile waits for the pipeline; if the
  // start fails, its connection is dropped.
  // A call takes the generation in force when it arrives and keeps it to its end (a reload
  // swaps `generation`; the old one closes when its last call has ended).
  let generation: Generation | null = null;
  let retire: (g: Generation) => void = () => undefined;
  let openPipeline: (g: Generation | null) => void = () => undefined;
  const pipelineReady = new Promise<Generation | null>((resolve) => (openPipeline = resolve));
  const withGeneration = (socket: Duplex, use: (g: Generation) => void) => {
    if (generation) return use(generation);
    void pipelineReady.then((g) => (g ? use(g) : socket.destroy()));
  };
  const withPipeline = (socket: Duplex, use: (d: PipelineDeps) => void) => withGeneration(socket, (g) => use(g.deps));

  try {
    const configured = configuredSigner(config);
    // The enforcing policy, and each shadow policy (one store per distinct path and entrypoint).
    const policyEvents = (shadow: boolean, store: () => PolicyStore): PolicyStoreEvents => {
      const role = shadow ? { shadow: true } : {};
      const what = shadow ? 'shadow policy' : 'policy';
      return {
        onLoaded({ revision, previous, files, warnings, recovers, bundle }) {
          metrics.policyReloads.inc({ result: 'loaded' });
          log.info(
            { revision, previous, ...role, ...(recovers ? { recovers } : {}) },
            recovers ? `${what} loaded; the rejected change is gone` : `${what} loaded`,
          );
          for (const warning of warnings) log.warn({ code: 'PC_BUILTIN_DIFFERS', revision, ...role }, warning);
          const noted = warnings.length > 0 ? { warnings } : {};
          // A bundle: its digest, manifest revision, serial (the next start's anti-rollback floor) and signer.
          const b = bundle
            ? {
                bundle_sha256: bundle.sha256,
                manifest_revision: bundle.manifestRevision,
                ...(bundle.serial !== null ? { serial: bundle.serial } : {}),
                signature: bundle.signedBy !== null ? { key_id: bundle.signedBy, scope: bundle.scope } : 'not verified',
              }
            : {};
          record({
            type: 'policy_loaded',
            time: new Date().toISOString(),
            revision,
            previous,
            ...role,
            ...b,
            files,
            ...noted,
            ...(recovers ? { recovers } : {}),
          });
        },
        onRejected(error, { revision }) {
          metrics.policyReloads.inc({ result: 'rejected' });
          const s = store();
          const inForce = s.ready ? s.current.revision : null;
          log.error({ err: error.message, revision, in_force: inForce, ...role }, `${what} change rejected; the previous ${what} stays in force`);
          const reason = error instanceof BundleRefusedError ? { reason: error.reason } : {};
          record({
            type: 'policy_rejected',
            time: new Date().toISOString(),
            revision,
            in_force: inForce,
            ...role,
            ...reason,
            error: error.message.slice(0, 4000),
          });
        },
        ...(shadow
          ? {}
          : {
              onState(state: PolicyState) {
                metrics.policyDrift.set(state.drift ? 1 : 0);
                metrics.policyRevision.reset();
                if (state.inForce) metrics.policyRevision.set({ state: 'in_force', revision: state.inForce }, 1);
                metrics.policyRevision.set({ state: 'on_disk', revision: state.onDisk ?? 'unreadable' }, 1);
                if (state.drift)
                  log.warn(
                    { in_force: state.inForce, on_disk: state.onDisk, reason: state.lastRejection?.error.slice(0, 500) },
                    'the policy on disk is not the policy in force',
                  );
              },
            }),
        onWatchGap(gap) {
          metrics.policyWatchGaps.inc({ cause: gap.cause });
          log.warn(
            { ...gap, ...role },
            gap.cause === 'poll' ? 'the poll found a policy change no file watch reported' : 'a policy directory cannot be watched; the poll still covers it',
          );
        },
      };
    };
    // The highest bundle serial accepted before, from the trail: a restart cannot roll back either.
    // Only with signing: an unsigned serial is a claim anyone can make, and a trail without any
    // serial (a policy directory) would be read to its first record on every start for nothing.
    const floor = config.policy.signing ? highestAcceptedSerial(config.audit.path) : null;
    const policy: PolicyStore = new PolicyStore(
      { ...config.policy, floor },
      policyEvents(false, () => policy),
    );
    closers.push(() => policy.close());
    // From a bundle server (policy.bundle), or from policy.path: either way the store puts it in force.
    const service = config.policy.bundle ? bundleServiceFor(config.policy.bundle, policy, metrics, log) : null;
    if (service) {
      closers.push(() => service.close());
      const first = await service.initial();
      if (first.source === 'persisted')
        log.warn(
          { url: displayUrl(config.policy.bundle!.url), bundle_sha256: first.sha256 },
          'the bundle server gave no usable bundle; enforcing the last one persisted',
        );
    } else await policy.load();
    // Shared by every runtime (a reload keeps the fingerprint key and the rotation records).
    const broker = brokerContext(log, (facts) => record({ type: 'credential_rotated', time: new Date().toISOString(), ...facts }));

    const memory = new MemoryGuard((pressed, state) => {
      metrics.memoryPressure.set(pressed ? 1 : 0);
      if (pressed)
        log.error(
          { heap_used: state.heapUsed, heap_limit: state.heapLimit, rss: state.rss, rss_limit: state.rssLimit },
          'memory is short; refusing new calls until it recovers',
        );
      else log.warn({ heap_used: state.heapUsed, rss: state.rss }, 'memory recovered; taking calls again');
    });
    closers.push(() => memory.close());

    // The listeners, before the trail (see withPipeline).
    let draining = false;
    let inFlight = 0;
    let drained: (() => void) | null = null;

    const server = http.createServer({ maxHeaderSize: 16 * 1024, headersTimeout: 30_000, requestTimeout: 120_000, keepAliveTimeout: 5_000 }, (req, res) =>
      withGeneration(req.socket, (g) => {
        const d = g.deps;
        if (!draining && serveProtectedResourceMetadata(req, res, d)) return;
        const ctx = newContext(req, res, randomUUID());
        inFlight++;
        g.inFlight++;
        metrics.inFlight.inc();
        void runCall(ctx, d, draining ? new GatewayError('PC_SHUTTING_DOWN', 'the gateway is shutting down') : undefined).finally(() => {
          inFlight--;
          metrics.inFlight.dec();
          if (--g.inFlight === 0 && g !== generation) retire(g);
          if (draining && inFlight === 0) drained?.();
        });
      }),
    );
    // Refusals before there is a request (parser errors, CONNECT): answered and audited too.
    server.on('clientError', (err, socket) => withPipeline(socket, (d) => refuseUnparsed(err, socket, d)));
    server.on('connect', (req, socket) => withPipeline(socket, (d) => refuseConnect(req, socket, d)));
    // The TCP listener screens each connection's first line (HTTP/0.9), then hands it to `server`.
    // With tls:, the listener is a TLS server whose files are watched and reloaded (src/edge/tls.ts).
    const agentTls = config.tls;
    const listener = createAgentListener(
      server,
      (socket) => withPipeline(socket, (d) => refuseHttp09(socket, d)),
      agentTls ? agentTlsOptions(agentTls) : undefined,
      // A refused handshake never reaches HTTP, so there is no audit record: the log says why.
      (err, socket) => log.info({ remote: socket.remoteAddress, err: err.message }, 'a TLS handshake on the agent listener was refused'),
    );
    if (agentTls) {
      const stopWatch = watchAgentTls(agentTls, listener as tls.Server, log);
      closers.push(() => stopWatch());
    }
    const bound = await bindListener(listener, config.listen.address, config.listen.where);
    closers.push(() =>
      new Promise<void>((resolve) => {
        listener.close(() => resolve());
        server.close();
        server.closeAllConnections();
      }).then(() => bound.cleanup()),
    );
    const edge = edgeAllowList(bound.place, config.listen.allowedHosts, config.listen.allowedOrigins, agentTls !== null);
    // What the configuration builds (routes, credentials, upstreams, stdio servers, shadows,
    // identity); a reload builds another beside it (gateway-runtime.ts).
    const runtimeContext: RuntimeContext = { log, broker, shadowEvents: (store) => policyEvents(true, store), listenerUrl: bound.url };
    let runtime = await buildRuntime(config, runtimeContext);
    // Generations swapped out by a reload whose calls have not all ended yet.
    const retiring = new Set<Generation>();
    closers.push(async () => {
      for (const g of retiring) await g.runtime.close();
      await runtime.close();
    });
    retire = (g) => {
      retiring.delete(g);
      void g.runtime.close().catch((err: Error) => log.warn({ err: err.message }, 'closing the previous configuration failed'));
    };
    warnDryRun(runtime, log);
    metrics.watchCredentials(() => [...runtime.providers.values()].map((p) => p.health()));
    const upstreams = { connectionCount: () => runtime.routes.reduce((n, r) => n + r.upstream.connectionCount(), 0) };

    let adminUrl: string | null = null;
    // With admin.token: the auditor's view of this trail on the admin listener, behind the token
    // (set once the signing key is known: the view trusts it to check the checkpoints).
    let auditView: express.Router | null = null;
    if (config.admin.enabled) {
      let adminEdge: EdgeAllowList | null = null;
      const app = createAdminApp(
        metrics,
        {
          details: () => ({
            policy: policyDetail(policy.state),
            ...(runtime.shadows.size > 0 ? { shadow_policies: [...runtime.shadows.values()].map((st) => policyDetail(st.state)) } : {}),
            // Loud on purpose: these routes enforce nothing (docs/policy.md, Dry run).
            ...(runtime.dryRun.length > 0
              ? { dry_run_routes: runtime.dryRun, warnings: [`not enforcing the policy on ${runtime.dryRun.join(', ')} (mode: dry_run)`] }
              : {}),
            credentials: credentialDetail(runtime.providers),
          }),
          problems() {
            const p: string[] = [];
            if (!policy.ready) p.push('no policy loaded');
            if (!audit) p.push('audit log not open yet');
            else if (!audit.healthy) p.push('audit log not writable');
            if (memory.pressed) p.push('memory pressure');
            if (draining) p.push('shutting down');
            return p;
          },
        },
        () => adminEdge,
        () => auditView,
      );
      const started = await startAdminServer(app, config.admin.address, config.admin.where);
      adminUrl = started.bound.url;
      adminEdge = edgeAllowList(started.bound.place, config.admin.allowedHosts, config.admin.allowedOrigins);
      const a = started.server;
      closers.push(() => new Promise<void>((resolve) => a.close(() => resolve())).then(() => started.bound.cleanup()));
    }

    // Only now the trail: the signing key (generated on first start), then the writer.
    const key = configured ? { signer: configured, generated: false } : loadOrCreateSigner(config.audit.keyFile);
    if (key.generated) generatedKey = config.audit.keyFile;
    broker.setSigner(key.signer);
    const keyInfo = { key_id: key.signer.keyId, public_key: key.signer.verifierKey };
    let sinks: AuditSinks | null = null;
    const writer: JsonlAuditWriter = await openAuditWriter({
      dir: config.audit.path,
      durability: config.audit.durability,
      signer: key.signer,
      checkpoint: config.audit.checkpoint,
      rotate: config.audit.rotate,
      preallocateBytes: config.audit.preallocateBytes,
      onDurable: config.audit.sinks.length ? () => sinks?.nudge() : undefined,
      onHealthChange(healthy, detail) {
        metrics.auditHealthy.set(healthy ? 1 : 0);
        if (!healthy) {
          log.error({ err: detail.error?.message }, 'audit log write failed; refusing every call until it recovers');
          return;
        }
        log.warn({ since: detail.since, refused_records: detail.refusedRecords }, 'audit log writable again; accepting calls');
        // The outage itself goes on the record: when it began and how many records were refused.
        // A disk that fills again at once can refuse this record too: then the next one carries
        // this outage as well, so no refused record goes uncounted in the trail.
        const since = unrecordedOutage?.since ?? detail.since;
        const refused = (unrecordedOutage?.refused ?? 0) + detail.refusedRecords;
        unrecordedOutage = { since, refused };
        audit
          ?.append({ type: 'audit_recovered', time: new Date().toISOString(), outage_since: since, refused_records: refused })
          .then(() => {
            if (unrecordedOutage?.since === since) unrecordedOutage = null;
          })
          .catch(() => undefined);
      },
    });
    audit = writer;
    generatedKey = null; // the trail is open and signed with it: the key is now in use
    if (key.generated)
      log.warn(
        { ...keyInfo, private_key_file: config.audit.keyFile },
        'generated a new audit signing key; keep a copy of the public key away from this machine to verify the trail',
      );
    else log.info(keyInfo, 'audit checkpoints are signed with this key');
    if (config.admin.enabled && config.admin.token)
      auditView = trailViewRoutes({
        trail: config.audit.path,
        keys: [key.signer.verifierKey],
        token: revealSecret(config.admin.token),
        // A live trail: opened on the first visit, opened again when older than this.
        reopenAfterMs: 30_000,
      }).router;
    metrics.auditHealthy.set(1);
    // The writer closes last (closers run in reverse), after everything that may still record.
    closers.unshift(() => writer.close());
    for (const event of early.splice(0)) record(event);

    // Sinks read the trail files on their own loop; the request path never waits for them.
    // Closed before the writer, after shipping gateway_stop if they can.
    const auditSinks = startAuditSinks(config.audit.sinks, {
      auditDir: config.audit.path,
      durableSeq: () => writer.syncedSeq,
      log,
      metrics: metrics.auditSink,
    });
    sinks = auditSinks;
    closers.push(() => auditSinks.close());
    policy.startWatching();
    service?.start();
    runtime.startWatching();

    const sessions = new SessionTable();
    const shared = { edge, policy, audit: writer, sessions, metrics, log, memory };
    generation = { runtime, deps: { ...shared, ...runtime.deps }, inFlight: 0 };
    openPipeline(generation);

    const url = agentTls ? bound.url.replace(/^http:/, 'https:') : bound.url;
    await writer.append({
      type: 'gateway_start',
      time: new Date().toISOString(),
      version: VERSION,
      pid: process.pid,
      config: config.file,
      config_sha256: configDigest(config.file),
      policy_revision: policy.current.revision,
      ...(runtime.shadows.size > 0 ? { shadow_revisions: [...runtime.shadows.values()].map((st) => st.current.revision) } : {}),
      ...(runtime.dryRun.length > 0 ? { dry_run_routes: runtime.dryRun } : {}),
      checkpoint_key_id: key.signer.keyId,
      listen: url,
    });
    log.info({ url, admin: adminUrl, policy_revision: policy.current.revision, audit: config.audit.path }, 'portcullis started');

    let closing: Promise<void> | null = null;
    // Config reload (README, Reload without restart): one at a time, on SIGHUP (the CLI) or a
    // change of the file (options.watchConfig), or gateway.reload().
    let configSha = configDigest(config.file);
    const loadNext = options.loadConfig ?? (() => loadConfig(config.file));
    let reloading: Promise<ReloadOutcome> = Promise.resolve({ result: 'unchanged' });
    const reloadOnce = async (): Promise<ReloadOutcome> => {
      if (closing) return { result: 'unchanged' };
      const sha = configDigest(config.file);
      // The file watch and a SIGHUP often both report one edit: the second has nothing to do.
      if (sha !== null && sha === configSha) return { result: 'unchanged' };
      let next: GatewayConfig;
      let built: Runtime;
      try {
        next = loadNext();
        assertReloadable(config, next);
        built = await buildRuntime(next, runtimeContext);
      } catch (err) {
        const e = toError(err);
        const code = e instanceof ConfigError ? { code: e.code, key_path: e.keyPath } : {};
        metrics.configReloads.inc({ result: 'rejected' });
        log.error({ err: e.message, file: config.file }, 'configuration change rejected; the running configuration stays');
        await writer
          .append({
            type: 'config_rejected',
            time: new Date().toISOString(),
            file: config.file,
            sha256: sha,
            in_force_sha256: configSha,
            ...code,
            error: e.message.slice(0, 4000),
          })
          .catch(() => undefined);
        return { result: 'rejected', error: e.message };
      }
      if (closing) {
        await built.close();
        return { result: 'unchanged' };
      }
      const old = generation!;
      runtime = built;
      generation = { runtime: built, deps: { ...shared, ...built.deps }, inFlight: 0 };
      // The calls under way finish on the configuration they started with; then it closes.
      if (old.inFlight === 0) retire(old);
      else retiring.add(old);
      built.startWatching();
      warnDryRun(built, log);
      const previous = configSha;
      configSha = sha;
      metrics.configReloads.inc({ result: 'loaded' });
      log.info({ file: config.file, sha256: sha, previous_sha256: previous, routes: next.routes.length }, 'configuration reloaded');
      await writer
        .append({
          type: 'config_loaded',
          time: new Date().toISOString(),
          file: config.file,
          sha256: sha,
          previous_sha256: previous,
          routes: next.routes.map((r) => r.name),
          ...(built.dryRun.length > 0 ? { dry_run_routes: built.dryRun } : {}),
        })
        .catch(() => undefined);
      return { result: 'loaded' };
    };
    const reload = (): Promise<ReloadOutcome> => (reloading = reloading.then(reloadOnce, reloadOnce));
    if (options.watchConfig && configSha !== null) {
      const watch = watchFileSet(
        { files: [config.file], pollMs: 1000, initial: null },
        {
          changed() {
            void reload();
            return true;
          },
          unreadable: (err) =>
            log.warn({ file: config.file, err: err.code ?? err.message }, 'the configuration file cannot be read; the running configuration stays'),
        },
      );
      closers.push(() => watch.close());
    }

    return {
      url,
      adminUrl,
      metrics,
      policy,
      audit: writer,
      upstreams,
      sinks: auditSinks,
      mcpSessions: sessions,
      reload,
      close() {
        closing ??= (async () => {
          draining = true;
          listener.close();
          server.closeIdleConnections();
          if (inFlight > 0) {
            await new Promise<void>((resolve) => {
              drained = resolve;
              setTimeout(resolve, options.drainMs ?? 10_000).unref();
            });
          }
          // Nothing may follow gateway_stop: a kept-alive connection would still be answered (and
          // audited) until cleanup closes it, so close every connection first, and stop the
          // policy reloads (a policy_loaded) too.
          server.closeAllConnections();
          await policy.close();
          await writer.append({ type: 'gateway_stop', time: new Date().toISOString(), pid: process.pid }).catch(() => undefined);
          await cleanup();
          log.info('portcullis stopped');
        })();
        return closing;
      },
    };
  } catch (err) {
    openPipeline(null);
    await cleanup();
    if (generatedKey) rmSync(generatedKey, { force: true });
    throw err;
  }
}

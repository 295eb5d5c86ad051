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
import { createAdminApp, startAdminServer } from './admin/admin-server';
import type { AuditEvent } from './audit/record';
import { parseSignerKey, type NoteSigner } from './audit/signed-note';
import { loadOrCreateSigner } from './audit/signing-key';
import { startAuditSinks, type AuditSinks } from './audit/sinks/audit-sinks';
import { openAuditWriter, type JsonlAuditWriter } from './audit/writer';
import type { Credential, GatewayConfig, IdentityMethodName, RouteConfig } from './config/types';
import { brokerContext } from './credential-injector/broker-context';
import { defaultChoiceOf } from './credential-injector/choose';
import { envSecrets } from './credential-injector/injector';
import type { CredentialProvider } from './credential-injector/provider';
import { createProvider } from './credential-injector/providers';
import { routeSecrets } from './credential-injector/route-secrets';
import { revealSecret, Secret } from './secret';
import { type EdgeAllowList, edgeAllowList } from './edge/allow-list';
import { bindListener } from './edge/listen';
import { agentTlsOptions, watchAgentTls } from './edge/tls';
import { ConfigError, GatewayError, PolicyBuildError } from './errors';
import { SessionTable } from './mcp/sessions';
import { startStdioBridge, StdioBridgeError, type StdioBridge } from './mcp/stdio/bridge';
import { apiKeyMethod } from './identity/api-key';
import { createAgentIdentifier } from './identity/identifier';
import type { IdentityMethod } from './identity/identity-method';
import { jwtMethod } from './identity/jwt';
import { mtlsMethod } from './identity/mtls';
import { protectedResources } from './identity/protected-resource';
import { createLogger } from './observability/logger';
import { createMetrics, type Metrics } from './observability/metrics';
import { PolicyStore, type PolicyState, type PolicyStoreEvents } from './policy/policy-store';
import { newContext } from './proxy/context';
import { HttpUpstream } from './proxy/forward';
import type { PipelineDeps } from './proxy/deps';
import { MemoryGuard } from './proxy/memory-guard';
import { createAgentListener } from './proxy/listener';
import { refuseConnect, refuseHttp09, refuseUnparsed } from './proxy/parser-refusal';
import { runCall } from './proxy/pipeline';
import { serveProtectedResourceMetadata } from './proxy/well-known';
import { routeRuntime, type RouteRuntime } from './proxy/route-runtime';
import { createRouteTable } from './proxy/route-table';

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

/** The order identity methods are asked in: a verified certificate, then agent keys, then tokens (docs/identity.md). */
const METHOD_ORDER: readonly IdentityMethodName[] = ['mtls', 'api_key', 'jwt'];

/** Options beyond the config file (for embedding and tests). */
export interface GatewayOptions {
  readonly logger?: Logger;
  /** How long shutdown waits for in-flight calls. Default 10 s. */
  readonly drainMs?: number;
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
  /** Drains and stops. */
  close(): Promise<void>;
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
  // The listeners are bound before the trail is opened, so a port in use refuses the start
  // before anything is written. A call that arrives meanwhile waits for the pipeline; if the
  // start fails, its connection is dropped.
  let deps: PipelineDeps | null = null;
  let openPipeline: (d: PipelineDeps | null) => void = () => undefined;
  const pipelineReady = new Promise<PipelineDeps | null>((resolve) => (openPipeline = resolve));
  const withPipeline = (socket: Duplex, use: (d: PipelineDeps) => void) => {
    if (deps) return use(deps);
    void pipelineReady.then((d) => (d ? use(d) : socket.destroy()));
  };

  try {
    const configured = configuredSigner(config);
    // The enforcing policy, and each shadow policy (one store per distinct path and entrypoint).
    const policyEvents = (shadow: boolean, store: () => PolicyStore): PolicyStoreEvents => {
      const role = shadow ? { shadow: true } : {};
      const what = shadow ? 'shadow policy' : 'policy';
      return {
        onLoaded({ revision, previous, files, warnings, recovers }) {
          metrics.policyReloads.inc({ result: 'loaded' });
          log.info(
            { revision, previous, ...role, ...(recovers ? { recovers } : {}) },
            recovers ? `${what} loaded; the rejected change is gone` : `${what} loaded`,
          );
          for (const warning of warnings) log.warn({ code: 'PC_BUILTIN_DIFFERS', revision, ...role }, warning);
          const noted = warnings.length > 0 ? { warnings } : {};
          record({ type: 'policy_loaded', time: new Date().toISOString(), revision, previous, ...role, files, ...noted, ...(recovers ? { recovers } : {}) });
        },
        onRejected(error, { revision }) {
          metrics.policyReloads.inc({ result: 'rejected' });
          const s = store();
          const inForce = s.ready ? s.current.revision : null;
          log.error({ err: error.message, revision, in_force: inForce, ...role }, `${what} change rejected; the previous ${what} stays in force`);
          record({ type: 'policy_rejected', time: new Date().toISOString(), revision, in_force: inForce, ...role, error: error.message.slice(0, 4000) });
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
    const policy: PolicyStore = new PolicyStore(
      config.policy,
      policyEvents(false, () => policy),
    );
    closers.push(() => policy.close());
    await policy.load();
    const shadows = new Map<string, PolicyStore>();
    for (const r of config.routes) {
      const c = r.shadowPolicy;
      if (c === null) continue;
      const key = `${c.path}\0${c.entrypoint}`;
      if (shadows.has(key)) continue;
      const store: PolicyStore = new PolicyStore(
        c,
        policyEvents(true, () => store),
      );
      shadows.set(key, store);
      closers.push(() => store.close());
      // A shadow that was asked for and does not load refuses the start, like the enforcing policy.
      await store.load().catch((err: Error) => {
        throw new PolicyBuildError(`shadow policy ${c.path}: ${err.message}`);
      });
    }
    const shadowOf = (r: RouteConfig) => (r.shadowPolicy ? shadows.get(`${r.shadowPolicy.path}\0${r.shadowPolicy.entrypoint}`)! : null);
    const dryRun = config.routes.filter((r) => r.mode === 'dry_run').map((r) => r.name);
    for (const r of config.routes)
      if (r.mode === 'dry_run')
        log.warn(
          { route: r.name },
          'route runs in dry_run mode: the policy is judged and recorded but NOT enforced; denied calls are forwarded with their credential',
        );

    // One run-time object per route: its credential, the secrets its answers must not carry,
    // and its upstream. A local stdio MCP server runs behind a private bridge on a Unix socket
    // and is forwarded to like any upstream; its secret environment is masked in its answers.
    // One provider per configured credential, shared by the routes naming it (one token cache).
    const broker = brokerContext(log, (facts) => record({ type: 'credential_rotated', time: new Date().toISOString(), ...facts }));
    const providers = new Map<string, CredentialProvider>();
    const providerOf = (c: Credential): CredentialProvider => {
      let p = providers.get(c.name);
      if (!p) {
        p = createProvider(c, broker, providerOf);
        providers.set(c.name, p);
        const made = p;
        closers.push(() => made.close?.());
      }
      return p;
    };
    metrics.watchCredentials(() => [...providers.values()].map((p) => p.health()));
    const routes: RouteRuntime[] = [];
    for (const r of config.routes) {
      const choices = new Map([...r.credentialChoices].map(([label, c]) => [label, providerOf(c)]));
      const credentialParts = {
        providers: choices,
        defaultChoice: defaultChoiceOf(r.credential ? providerOf(r.credential) : null),
        maskAll: routeSecrets(r.name, [...choices.values()]),
      };
      const stdio = r.mcp?.stdio;
      if (!stdio) {
        // An mtls credential (a route's only one, config/routes.ts) is set on its connections.
        const upstream = new HttpUpstream(r, undefined, credentialParts.defaultChoice?.provider.tls);
        closers.push(() => upstream.close());
        routes.push(routeRuntime(r, { ...credentialParts, secrets: null, upstream, shadow: shadowOf(r) }));
        continue;
      }
      let bridge: StdioBridge;
      try {
        bridge = await startStdioBridge({ route: r.name, command: stdio.command, env: stdio.env, cwd: stdio.cwd, restart: stdio.restart }, log);
      } catch (err) {
        if (err instanceof StdioBridgeError) throw new ConfigError('CONFIG_STDIO_COMMAND', stdio.where, err.message);
        throw err;
      }
      closers.push(() => bridge.close());
      const upstream = new HttpUpstream(r, bridge.socketPath);
      closers.push(() => upstream.close());
      const env = Object.values(stdio.env).filter((v): v is Secret => v instanceof Secret);
      routes.push(routeRuntime(r, { ...credentialParts, secrets: env.length ? envSecrets(`${r.name}.env`, env) : null, upstream, shadow: shadowOf(r) }));
    }

    const upstreams = { connectionCount: () => routes.reduce((n, r) => n + r.upstream.connectionCount(), 0) };

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
      withPipeline(req.socket, (d) => {
        if (!draining && serveProtectedResourceMetadata(req, res, d)) return;
        const ctx = newContext(req, res, randomUUID());
        inFlight++;
        metrics.inFlight.inc();
        void runCall(ctx, d, draining ? new GatewayError('PC_SHUTTING_DOWN', 'the gateway is shutting down') : undefined).finally(() => {
          inFlight--;
          metrics.inFlight.dec();
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

    let adminUrl: string | null = null;
    if (config.admin.enabled) {
      let adminEdge: EdgeAllowList | null = null;
      const app = createAdminApp(
        metrics,
        {
          details: () => ({
            policy: policyDetail(policy.state),
            ...(shadows.size > 0 ? { shadow_policies: [...shadows.values()].map((st) => policyDetail(st.state)) } : {}),
            // Loud on purpose: these routes enforce nothing (docs/policy.md, Dry run).
            ...(dryRun.length > 0 ? { dry_run_routes: dryRun, warnings: [`not enforcing the policy on ${dryRun.join(', ')} (mode: dry_run)`] } : {}),
            credentials: credentialDetail(providers),
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
        record({ type: 'audit_recovered', time: new Date().toISOString(), outage_since: detail.since, refused_records: detail.refusedRecords });
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
    for (const store of shadows.values()) store.startWatching();

    const routeTable = createRouteTable(routes);
    const jwt = config.identity.jwt;
    // MCP routes are OAuth protected resources (RFC 9728): their resource is the public base URL
    // (identity.jwt.resource, else this listener's) plus the route's prefix.
    const resources = jwt ? protectedResources(jwt, config.routes, bound.url) : null;
    if (jwt && jwt.resource === null && !/^https?:/.test(bound.url) && config.routes.some((r) => r.kind === 'mcp'))
      log.warn(
        { listen: bound.url },
        'identity.jwt.resource is not set and the listener has no http URL: MCP clients cannot use the protected resource metadata',
      );
    // One identifier per route over the methods it accepts (routes[].identity), asked in this
    // order: a verified client certificate, then agent keys, then tokens. One instance of each
    // method is shared, so the issuer's keys are fetched and cached once.
    const methods: Record<IdentityMethodName, IdentityMethod | null> = {
      mtls: config.identity.mtls ? mtlsMethod(config.identity.mtls) : null,
      api_key: apiKeyMethod(config.agents),
      jwt: jwt ? jwtMethod(jwt, log) : null,
    };
    const identifiers = new Map(
      config.routes.map((r) => {
        const accepted = METHOD_ORDER.filter((m) => r.identity.methods.includes(m)).map((m) => methods[m]!);
        const { required, requiredScopes } = r.identity;
        return [r.name, createAgentIdentifier(accepted, { resource: resources?.forRoute(r.name)?.resource ?? null, required, requiredScopes })];
      }),
    );
    const sessions = new SessionTable();
    deps = {
      edge,
      identifiers,
      unroutedIdentifier: createAgentIdentifier(METHOD_ORDER.flatMap((m) => methods[m] ?? [])),
      protectedResources: resources,
      routes: routeTable,
      maxBodyBytes: config.limits.maxBodyBytes,
      policy,
      audit: writer,
      sessions,
      metrics,
      log,
      memory,
    };
    openPipeline(deps);

    const url = agentTls ? bound.url.replace(/^http:/, 'https:') : bound.url;
    await writer.append({
      type: 'gateway_start',
      time: new Date().toISOString(),
      version: VERSION,
      pid: process.pid,
      config: config.file,
      config_sha256: configDigest(config.file),
      policy_revision: policy.current.revision,
      ...(shadows.size > 0 ? { shadow_revisions: [...shadows.values()].map((st) => st.current.revision) } : {}),
      ...(dryRun.length > 0 ? { dry_run_routes: dryRun } : {}),
      checkpoint_key_id: key.signer.keyId,
      listen: url,
    });
    log.info({ url, admin: adminUrl, policy_revision: policy.current.revision, audit: config.audit.path }, 'portcullis started');

    let closing: Promise<void> | null = null;
    return {
      url,
      adminUrl,
      metrics,
      policy,
      audit: writer,
      upstreams,
      sinks: auditSinks,
      mcpSessions: sessions,
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

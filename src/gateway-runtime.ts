/**
 * What a configuration builds, apart from what lives as long as the process (the listeners, the
 * trail, the enforcing policy, the metrics, the MCP session table): the routes with their
 * credentials, upstreams and stdio servers, the shadow policies, and the identity methods. A
 * config reload (src/gateway.ts) builds a whole new Runtime beside the running one and swaps the
 * reference; a call keeps the runtime it started with, and the old one is closed when its last
 * call has ended. Nothing here is shared between two runtimes except the broker context, so a
 * runtime can be thrown away half built.
 */
import type { Logger } from 'pino';
import type { Credential, GatewayConfig, IdentityMethodName, RouteConfig } from './config/types';
import type { BrokerContext } from './credential-injector/broker-context';
import { defaultChoiceOf } from './credential-injector/choose';
import { envSecrets } from './credential-injector/injector';
import type { CredentialProvider } from './credential-injector/provider';
import { createProvider } from './credential-injector/providers';
import { routeSecrets } from './credential-injector/route-secrets';
import { ConfigError, PolicyBuildError } from './errors';
import { apiKeyMethod } from './identity/api-key';
import { createAgentIdentifier } from './identity/identifier';
import type { IdentityMethod } from './identity/identity-method';
import { jwtMethod } from './identity/jwt';
import { mtlsMethod } from './identity/mtls';
import { protectedResources } from './identity/protected-resource';
import { startStdioBridge, StdioBridgeError, type StdioBridge } from './mcp/stdio/bridge';
import { PolicyStore, type PolicyStoreEvents } from './policy/policy-store';
import type { PipelineDeps } from './proxy/deps';
import { HttpUpstream } from './proxy/forward';
import { routeRuntime, type RouteRuntime } from './proxy/route-runtime';
import { createRouteTable } from './proxy/route-table';
import { Secret } from './secret';

/** The order identity methods are asked in: a verified certificate, then agent keys, then tokens (docs/identity.md). */
const METHOD_ORDER: readonly IdentityMethodName[] = ['mtls', 'api_key', 'jwt'];

/** The parts of the pipeline's dependencies a configuration decides. */
export type RuntimeDeps = Pick<PipelineDeps, 'identifiers' | 'unroutedIdentifier' | 'protectedResources' | 'routes' | 'maxBodyBytes'>;

/** One configuration, built. */
export interface Runtime {
  readonly config: GatewayConfig;
  readonly routes: readonly RouteRuntime[];
  readonly providers: ReadonlyMap<string, CredentialProvider>;
  /** Shadow policies by path and entrypoint. */
  readonly shadows: ReadonlyMap<string, PolicyStore>;
  /** Routes with mode: dry_run. */
  readonly dryRun: readonly string[];
  readonly deps: RuntimeDeps;
  /** Starts the shadow policies' reloads (once the trail is open). */
  startWatching(): void;
  /** Closes what it started: shadow policies, credential providers, upstream pools, stdio servers. */
  close(): Promise<void>;
}

/** What building a runtime needs from the gateway. */
export interface RuntimeContext {
  readonly log: Logger;
  readonly broker: BrokerContext;
  /** The events of a shadow policy store (its records and logs). */
  shadowEvents(store: () => PolicyStore): PolicyStoreEvents;
  /** The agent listener's URL (the MCP routes' default resource). */
  readonly listenerUrl: string;
}

/** Builds a configuration's runtime. On failure, closes what it had started and throws. */
export async function buildRuntime(config: GatewayConfig, ctx: RuntimeContext): Promise<Runtime> {
  const { log, broker } = ctx;
  const closers: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c();
  };
  try {
    const shadows = new Map<string, PolicyStore>();
    const shadowKey = (r: RouteConfig) => (r.shadowPolicy ? `${r.shadowPolicy.path}\0${r.shadowPolicy.entrypoint}` : null);
    for (const r of config.routes) {
      const key = shadowKey(r);
      if (key === null || shadows.has(key)) continue;
      const c = r.shadowPolicy!;
      const store: PolicyStore = new PolicyStore(
        c,
        ctx.shadowEvents(() => store),
      );
      shadows.set(key, store);
      closers.push(() => store.close());
      // A shadow that was asked for and does not load refuses the start, like the enforcing policy.
      await store.load().catch((err: Error) => {
        throw new PolicyBuildError(`shadow policy ${c.path}: ${err.message}`);
      });
    }
    const dryRun = config.routes.filter((r) => r.mode === 'dry_run').map((r) => r.name);

    // One run-time object per route: its credential, the secrets its answers must not carry,
    // and its upstream. A local stdio MCP server runs behind a private bridge on a Unix socket
    // and is forwarded to like any upstream; its secret environment is masked in its answers.
    // One provider per configured credential, shared by the routes naming it (one token cache).
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
    const routes: RouteRuntime[] = [];
    for (const r of config.routes) {
      const choices = new Map([...r.credentialChoices].map(([label, c]) => [label, providerOf(c)]));
      const key = shadowKey(r);
      const parts = {
        providers: choices,
        defaultChoice: defaultChoiceOf(r.credential ? providerOf(r.credential) : null),
        maskAll: routeSecrets(r.name, [...choices.values()]),
        shadow: key === null ? null : shadows.get(key)!,
      };
      const stdio = r.mcp?.stdio;
      if (!stdio) {
        // An mtls credential (a route's only one, config/routes.ts) is set on its connections.
        const upstream = new HttpUpstream(r, undefined, parts.defaultChoice?.provider.tls);
        closers.push(() => upstream.close());
        routes.push(routeRuntime(r, { ...parts, secrets: null, upstream }));
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
      routes.push(routeRuntime(r, { ...parts, secrets: env.length ? envSecrets(`${r.name}.env`, env) : null, upstream }));
    }

    const jwt = config.identity.jwt;
    // MCP routes are OAuth protected resources (RFC 9728): their resource is the public base URL
    // (identity.jwt.resource, else this listener's) plus the route's prefix.
    const resources = jwt ? protectedResources(jwt, config.routes, ctx.listenerUrl) : null;
    if (jwt && jwt.resource === null && !/^https?:/.test(ctx.listenerUrl) && config.routes.some((r) => r.kind === 'mcp'))
      log.warn(
        { listen: ctx.listenerUrl },
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
    return {
      config,
      routes,
      providers,
      shadows,
      dryRun,
      deps: {
        identifiers,
        unroutedIdentifier: createAgentIdentifier(METHOD_ORDER.flatMap((m) => methods[m] ?? [])),
        protectedResources: resources,
        routes: createRouteTable(routes),
        maxBodyBytes: config.limits.maxBodyBytes,
      },
      startWatching() {
        for (const store of shadows.values()) store.startWatching();
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Loud on purpose: a start-up (or reload) warning for every route that does not enforce its policy. */
export function warnDryRun(runtime: Runtime, log: Logger): void {
  for (const name of runtime.dryRun)
    log.warn(
      { route: name },
      'route runs in dry_run mode: the policy is judged and recorded but NOT enforced; denied calls are forwarded with their credential',
    );
}

/**
 * What a route is at run time, in one object looked up once per call: its configuration, the
 * credential attached to its allowed calls, the secrets its answers must not carry, and its
 * upstream (a keep-alive pool, over a Unix socket for a stdio bridge). Built once per
 * configuration by the gateway; the route table maps a path to one of these.
 */
import type { RouteConfig } from '../config/types';
import type { CredentialBinding, ResponseSecrets } from '../credential-injector/injector';
import type { Upstream } from './forward';

/** A route's configuration and the run-time parts built from it. */
export interface RouteRuntime extends RouteConfig {
  /** The credential attached to allowed calls; null when the route has none. */
  readonly binding: CredentialBinding | null;
  /** What allowed calls' answers must not carry: the credential's values, or a stdio server's secret environment; null when neither. */
  readonly secrets: ResponseSecrets | null;
  /** Where allowed calls go. */
  readonly upstream: Upstream;
}

/** Assembles a route's run-time object. */
export function routeRuntime(config: RouteConfig, parts: Pick<RouteRuntime, 'binding' | 'secrets' | 'upstream'>): RouteRuntime {
  return Object.freeze({ ...config, ...parts });
}

/**
 * What a route is at run time, in one object looked up once per call: its configuration, the
 * credential attached to its allowed calls, the secrets its answers must not carry, and its
 * upstream (a keep-alive pool, over a Unix socket for a stdio bridge). Built once per
 * configuration by the gateway; the route table maps a path to one of these.
 */
import type { RouteConfig } from '../config/types';
import type { ResponseSecrets } from '../credential-injector/injector';
import type { CredentialChoice } from '../credential-injector/choose';
import type { CredentialProvider } from '../credential-injector/provider';
import type { RouteSecrets } from '../credential-injector/route-secrets';
import type { PolicySource } from '../policy/engine';
import type { Upstream } from './forward';

/** A route's configuration and the run-time parts built from it. */
export interface RouteRuntime extends RouteConfig {
  /** The providers of the credentials the decision may choose, by the route's label (`credentialChoices`). */
  readonly providers: ReadonlyMap<string, CredentialProvider>;
  /** What a call gets when the decision names no credential; null: none (or the decision must choose). */
  readonly defaultChoice: CredentialChoice | null;
  /** With several credentials: the secrets every call's answer is masked with (all of the route's credentials); null with one or none. */
  readonly maskAll: RouteSecrets | null;
  /** What a stdio server's answers must not carry (its secret environment); null otherwise. */
  readonly secrets: ResponseSecrets | null;
  /** Where allowed calls go. */
  readonly upstream: Upstream;
  /** The shadow policy (shadowPolicy) in force beside the enforcing one; null: none. */
  readonly shadow: PolicySource | null;
}

/** Assembles a route's run-time object. */
export function routeRuntime(
  config: RouteConfig,
  parts: Pick<RouteRuntime, 'providers' | 'defaultChoice' | 'maskAll' | 'secrets' | 'upstream' | 'shadow'>,
): RouteRuntime {
  return Object.freeze({ ...config, ...parts });
}

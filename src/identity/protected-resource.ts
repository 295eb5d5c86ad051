/**
 * MCP routes as OAuth protected resources (the MCP authorization spec, 2025-06-18 and later): each
 * MCP route's resource identifier is the gateway's public base URL plus the route's prefix, and
 * its Protected Resource Metadata (RFC 9728 §3) is served at
 * `/.well-known/oauth-protected-resource<prefix without its trailing slash>`, naming the one
 * configured issuer as authorization server. A 401 on an MCP route points to that document
 * (`WWW-Authenticate: Bearer resource_metadata="…"`), and a token used there must be meant for
 * that resource or the configured audience (RFC 8707): a token minted for another route is refused.
 */
import type { JwtIdentityConfig, RouteConfig } from '../config/types';

/** The well-known prefix of RFC 9728 §3.1. */
export const PRM_PREFIX = '/.well-known/oauth-protected-resource';

/** One MCP route as a protected resource. */
export interface ProtectedResource {
  /** The route's resource identifier: what its tokens' `aud` names (RFC 8707). */
  readonly resource: string;
  /** Where its metadata is served: an absolute URL, for the challenge. */
  readonly metadataUrl: string;
  /** The metadata document (RFC 9728 §2), serialised. */
  readonly document: string;
}

/** The MCP routes' protected resources, by route name and by metadata path. */
export interface ProtectedResources {
  /** The route's resource, or null when it is not an MCP route. */
  forRoute(routeName: string): ProtectedResource | null;
  /** The metadata document served at a path, or null when the path names none. */
  documentAt(path: string): string | null;
}

/** The MCP routes' protected resources; the public base is `identity.jwt.resource`, else the listener's URL. */
export function protectedResources(jwt: JwtIdentityConfig, routes: readonly RouteConfig[], listenUrl: string): ProtectedResources {
  const base = (jwt.resource ?? listenUrl).replace(/\/+$/, '');
  const byName = new Map<string, ProtectedResource>();
  const byPath = new Map<string, ProtectedResource>();
  for (const r of routes) {
    // A route that takes no tokens (routes[].identity.methods without jwt) is no OAuth resource.
    if (r.kind !== 'mcp' || !r.identity.methods.includes('jwt')) continue;
    const resource = `${base}${r.prefix}`;
    const metadataPath = `${PRM_PREFIX}${r.prefix.replace(/\/$/, '')}`;
    const document = JSON.stringify({
      resource,
      authorization_servers: [jwt.issuer],
      ...(r.identity.requiredScopes.length > 0 ? { scopes_supported: r.identity.requiredScopes } : {}),
      bearer_methods_supported: ['header'],
      resource_name: `Portcullis MCP route ${r.name}`,
    });
    const pr = Object.freeze({ resource, metadataUrl: `${base}${metadataPath}`, document });
    byName.set(r.name, pr);
    byPath.set(metadataPath, pr);
    byPath.set(`${metadataPath}/`, pr);
  }
  return {
    forRoute: (name) => byName.get(name) ?? null,
    documentAt: (path) => byPath.get(path)?.document ?? null,
  };
}

/** Maps a canonical path to its route by longest prefix; built once per configuration. */
import { GatewayError } from '../errors';

/** A matched route and the path relative to its prefix (always starting with '/'). */
export interface RouteMatch<R> {
  readonly route: R;
  readonly relativePath: string;
}

/** Longest-prefix route lookup. */
export interface RouteTable<R> {
  /** Throws PC_ROUTE_NOT_FOUND when nothing matches. */
  match(path: string): RouteMatch<R>;
}

/** Builds the lookup; prefixes are compared case-sensitively on the canonical path. */
export function createRouteTable<R extends { readonly prefix: string }>(routes: readonly R[]): RouteTable<R> {
  const sorted = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  return {
    match(path) {
      for (const route of sorted) {
        const p = route.prefix;
        if (path.startsWith(p)) return { route, relativePath: path.slice(p.length - 1) };
        if (path.length === p.length - 1 && p.startsWith(path)) return { route, relativePath: '/' };
      }
      throw new GatewayError('PC_ROUTE_NOT_FOUND', 'no route matches this path');
    },
  };
}

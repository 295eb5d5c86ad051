/**
 * Which names a listener answers to: its `Host` and `Origin` allow-list. It closes DNS
 * rebinding (MCP TypeScript SDK CVE-2025-66414): a web page on `evil.example` whose name is made
 * to resolve to 127.0.0.1 can make the browser send requests to a loopback listener, but the
 * browser still says `Host: evil.example` and `Origin: http://evil.example`. A listener that
 * answers only to its own names cannot be used that way.
 *
 * Only `Host` is judged: `X-Forwarded-Host`, `Forwarded` and `X-Real-IP` are the agent's words,
 * not facts, and never stand in for it. An `Origin` header, when present, must be on the list
 * (browsers send it on cross-origin and on POST requests; other clients usually send none).
 * Refuse, don't repair: a Host that is missing, repeated or malformed is refused like a foreign one.
 */
import os from 'node:os';

/** One allowed Host: a name (lower case; IPv6 in brackets) and its port, or null for any port. */
export interface HostEntry {
  readonly host: string;
  readonly port: number | null;
}

/** Where a listener listens, as far as its names are concerned. */
export type ListenPlace =
  | {
      readonly kind: 'tcp';
      /** The host as configured (a name or an address). */
      readonly host: string;
      /** The address actually bound, when it differs (a name resolved). */
      readonly bound?: string;
      readonly port: number;
    }
  | { readonly kind: 'unix' };

/** A listener's allow-list, built once per listener. */
export interface EdgeAllowList {
  readonly hosts: readonly HostEntry[];
  /** Allowed origins (`scheme://host[:port]`, normalised), or null: the listener's scheme and an allowed Host. */
  readonly origins: readonly string[] | null;
  /** The listener serves TLS (tls:): its scheme is https, its default port 443. */
  readonly https?: boolean;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** `[::1]` for an IPv6 literal, the name otherwise, lower case. */
function bracketed(host: string): string {
  const h = host.toLowerCase();
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/**
 * The default Host allow-list of a listener bound at `place`: its own address (as configured
 * and as bound) and the loopback
 * names (`localhost`, `127.0.0.1`, `[::1]`), each with the bound port; on a wildcard address
 * (0.0.0.0, ::) also every address of this machine's interfaces with that port (a rebinding
 * page always says a name, never an address, and probes such as the kubelet's say the pod's
 * address). On a Unix socket: `localhost`, on any port (what clients send over a socket).
 */
export function defaultHosts(place: ListenPlace): HostEntry[] {
  if (place.kind === 'unix') return [{ host: 'localhost', port: null }];
  const names = new Set([bracketed(place.host), ...(place.bound ? [bracketed(place.bound)] : []), 'localhost', '127.0.0.1', '[::1]']);
  if (WILDCARDS.has(place.host)) {
    for (const w of WILDCARDS) names.delete(bracketed(w));
    for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) if (!i.address.includes('%')) names.add(bracketed(i.address));
  }
  return [...names].map((host) => ({ host, port: place.port }));
}

/** Parses a `Host` value (`name`, `name:port`, `[v6]:port`); null when it is not one. */
export function parseHost(value: string): HostEntry | null {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(value.toLowerCase());
  if (!m) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && port > 65535) return null;
  return { host: m[1], port };
}

/** Normalised origin (`scheme://host[:port]`, default port dropped), or null when `value` is not an http(s) origin. */
export function normaliseOrigin(value: string): string | null {
  if (!/^https?:\/\/[^/?#@]+$/i.test(value)) return null;
  try {
    return new URL(value).origin;
  } catch {
    return null;
  }
}

function hostAllowed(list: readonly HostEntry[], host: string, port: number): boolean {
  return list.some((e) => e.host === host && (e.port === null || e.port === port));
}

/** The allow-list of a listener bound at `place`, with the configured lists where given. */
export function edgeAllowList(place: ListenPlace, hosts: readonly HostEntry[] | null, origins: readonly string[] | null, https = false): EdgeAllowList {
  return Object.freeze({ hosts: Object.freeze(hosts ?? defaultHosts(place)), origins, https });
}

/**
 * Every `Host` and every `Origin` value of a request, from its raw header lines, as
 * `headersDistinct` gives them. Read from `rawHeaders` because `headersDistinct` builds arrays
 * for every header of every call (9 µs a call under the profiler in issue 13's MCP profile,
 * docs/benchmarks.md) when only these two are wanted.
 */
export function hostAndOrigin(rawHeaders: readonly string[]): { host: string[] | undefined; origin: string[] | undefined } {
  const host: string[] = [];
  const origin: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.length === 4 && name.toLowerCase() === 'host') host.push(rawHeaders[i + 1]);
    else if (name.length === 6 && name.toLowerCase() === 'origin') origin.push(rawHeaders[i + 1]);
  }
  return { host: host.length > 0 ? host : undefined, origin: origin.length > 0 ? origin : undefined };
}

/** Why a request is refused at the edge, or null when its Host and Origin are allowed. */
export function judgeEdge(list: EdgeAllowList, host: readonly string[] | undefined, origin: readonly string[] | undefined): 'host' | 'origin' | null {
  if (host?.length !== 1) return 'host';
  const h = parseHost(host[0]);
  // No port in Host means the scheme's default: 80, or 443 on a TLS listener.
  const defaultPort = list.https === true ? 443 : 80;
  if (!h || !hostAllowed(list.hosts, h.host, h.port ?? defaultPort)) return 'host';
  if (origin === undefined || origin.length === 0) return null;
  if (origin.length !== 1) return 'origin';
  const o = normaliseOrigin(origin[0]);
  if (o === null) return 'origin';
  if (list.origins !== null) return list.origins.includes(o) ? null : 'origin';
  const u = new URL(o);
  if (u.protocol !== (list.https === true ? 'https:' : 'http:')) return 'origin';
  return hostAllowed(list.hosts, u.hostname, u.port === '' ? defaultPort : Number(u.port)) ? null : 'origin';
}

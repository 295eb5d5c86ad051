/**
 * The identify stage's logic: reads what the request presents (`Authorization: Bearer <token>`)
 * and asks each method the route accepts, in order. A verified client certificate (mtls.ts)
 * decides before any header is read. Then the agent-key method comes first, then the JWT
 * method; the first that recognises the credential decides, and one that recognises it but finds
 * it invalid refuses the call. A credential no method recognises is an unknown agent. One
 * identifier per route (src/gateway.ts builds them): its methods, resource and scopes are fixed.
 */
import { GatewayError } from '../errors';
import { InsufficientScope, TokenRequired } from './challenge';
import type { AgentIdentity, IdentityMethod, PresentedCredentials } from './identity-method';

/** Resolves what a request presents to the calling agent, for one route. */
export interface AgentIdentifier {
  /**
   * The agent, or null when no Authorization header was sent. Throws PC_BAD_AUTHORIZATION for a
   * malformed header, PC_UNKNOWN_AGENT for a credential no method recognises, PC_TOKEN_REQUIRED
   * for none where one is required, PC_INSUFFICIENT_SCOPE for a token lacking the route's
   * scopes, and the method's own refusal (PC_TOKEN_*) for a token it recognises but rejects.
   */
  identify(authorization: string | undefined, url: string, socket?: object): Promise<AgentIdentity | null> | AgentIdentity | null;
}

/** Agent keys were never longer than this; kept when no token method is configured. */
const MAX_KEY_CHARS = 4096;
/** A token longer than this is refused before any method parses it. */
export const MAX_TOKEN_BYTES = 8192;

/** What one route asks of its callers (routes[].identity over identity.jwt; RFC 8707). */
export interface RouteRequirements {
  /** The MCP route's resource identifier (RFC 8707), accepted as a token audience; null elsewhere. */
  readonly resource: string | null;
  /** Whether a call without Authorization is refused. */
  readonly required: boolean;
  /** The scopes a token must carry (and the PC_TOKEN_REQUIRED challenge names). */
  readonly requiredScopes: readonly string[];
}

const OPEN: RouteRequirements = Object.freeze({ resource: null, required: false, requiredScopes: Object.freeze([]) });

/** Builds a route's identifier over the methods it accepts, in the order they are asked. */
export function createAgentIdentifier(methods: readonly IdentityMethod[], requirements: RouteRequirements = OPEN): AgentIdentifier {
  const tokens = methods.some((m) => m.name === 'jwt');
  const { required, requiredScopes } = requirements;
  // Scopes are a token's: an agent key or a certificate carries none and is not asked for them.
  const scoped = (found: AgentIdentity): AgentIdentity => {
    if (found.method === 'jwt' && requiredScopes.some((s) => !found.scopes.includes(s))) throw new InsufficientScope(requiredScopes);
    return found;
  };
  const scopedOrNull = (found: AgentIdentity | null) => (found === null ? null : scoped(found));
  const presentedOf = (bearer: string): PresentedCredentials => ({ bearer, resource: requirements.resource });
  return {
    identify(authorization, url, socket) {
      // A verified client certificate (mtls) decides before any header: headers are the agent's words.
      if (socket !== undefined)
        for (const m of methods) {
          const found = m.identifyConnection?.(socket);
          if (found) return found;
        }
      // RFC 6750 §2.3: a token in a URL lands in logs and histories; refused, not looked at.
      if (tokens && hasQueryToken(url))
        throw new GatewayError('PC_TOKEN_INVALID', 'a token in the query string is refused: send it in the Authorization header', ['token in query string']);
      if (authorization === undefined) {
        if (required) throw new TokenRequired(requiredScopes);
        return null;
      }
      const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization);
      if (!m) throw new GatewayError('PC_BAD_AUTHORIZATION', 'Authorization must be "Bearer <agent key or token>"');
      const bearer = m[1];
      if (!tokens && bearer.length > MAX_KEY_CHARS) throw new GatewayError('PC_BAD_AUTHORIZATION', 'Authorization must be "Bearer <agent key>"');
      if (bearer.length > MAX_TOKEN_BYTES) throw new GatewayError('PC_TOKEN_INVALID', 'the token is larger than 8 KiB', ['token too large']);
      const found = firstMatch(methods, presentedOf(bearer), 0);
      return found instanceof Promise ? found.then(scopedOrNull) : scoped(found);
    },
  };
}

/** The first method's answer that is not null; synchronous while the methods are. */
function firstMatch(methods: readonly IdentityMethod[], presented: PresentedCredentials, from: number): Promise<AgentIdentity | null> | AgentIdentity {
  for (let i = from; i < methods.length; i++) {
    const r = methods[i].identify(presented);
    if (r instanceof Promise) return r.then((found) => found ?? firstMatch(methods, presented, i + 1));
    if (r !== null) return r;
  }
  throw new GatewayError('PC_UNKNOWN_AGENT', 'the agent key is not recognised');
}

/** `access_token` among the query parameters (RFC 6750 §2.3), however it is escaped. */
function hasQueryToken(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) return false;
  try {
    return new URLSearchParams(url.slice(q + 1)).has('access_token');
  } catch {
    return false;
  }
}

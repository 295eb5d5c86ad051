/**
 * The identify stage's logic: reads what the request presents (`Authorization: Bearer <token>`)
 * and asks each configured method in order. A verified client certificate (mtls.ts) decides
 * before any header is read. Then the agent-key method comes first, then the JWT
 * method; the first that recognises the credential decides, and one that recognises it but finds
 * it invalid refuses the call. A credential no method recognises is an unknown agent.
 */
import { GatewayError } from '../errors';
import { TokenRequired } from './challenge';
import type { AgentIdentity, IdentityMethod, PresentedCredentials } from './identity-method';

/** Resolves what a request presents to the calling agent. */
export interface AgentIdentifier {
  /**
   * The agent, or null when no Authorization header was sent. Throws PC_BAD_AUTHORIZATION for a
   * malformed header, PC_UNKNOWN_AGENT for a credential no method recognises, and the method's
   * own refusal (PC_TOKEN_*) for a token it recognises but rejects.
   */
  identify(authorization: string | undefined, url: string, socket?: object): Promise<AgentIdentity | null> | AgentIdentity | null;
}

/** Agent keys were never longer than this; kept when no token method is configured. */
const MAX_KEY_CHARS = 4096;
/** A token longer than this is refused before any method parses it. */
export const MAX_TOKEN_BYTES = 8192;

/** What the identifier needs to know of the routes for tokens (RFC 8707, identity.jwt.required). */
export interface TokenRequirements {
  /** The resource identifier of the MCP route a request URL is for, or null. */
  resourceOf(url: string): string | null;
  /** Whether a call without Authorization is refused. */
  readonly required: boolean;
  /** The scopes every token must carry (named in the PC_TOKEN_REQUIRED challenge). */
  readonly requiredScopes: readonly string[];
}

/** Builds the identifier over the configured methods, in order. */
export function createAgentIdentifier(methods: readonly IdentityMethod[], requirements: TokenRequirements | null = null): AgentIdentifier {
  const tokens = methods.some((m) => m.name === 'jwt');
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
        if (requirements?.required) throw new TokenRequired(requirements.requiredScopes);
        return null;
      }
      const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization);
      if (!m) throw new GatewayError('PC_BAD_AUTHORIZATION', 'Authorization must be "Bearer <agent key or token>"');
      const bearer = m[1];
      if (!tokens && bearer.length > MAX_KEY_CHARS) throw new GatewayError('PC_BAD_AUTHORIZATION', 'Authorization must be "Bearer <agent key>"');
      if (bearer.length > MAX_TOKEN_BYTES) throw new GatewayError('PC_TOKEN_INVALID', 'the token is larger than 8 KiB', ['token too large']);
      // The route's resource costs a canonicalisation and a route lookup: worked out only if a
      // method asks (the token method; an agent key decides without it), and once.
      let resource: string | null | undefined;
      const presented: PresentedCredentials = {
        bearer,
        get resource() {
          if (resource === undefined) resource = requirements?.resourceOf(url) ?? null;
          return resource;
        },
      };
      return firstMatch(methods, presented, 0);
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

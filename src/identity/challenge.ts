/**
 * The `WWW-Authenticate` challenge of a refused bearer token (RFC 6750 §3): `invalid_token` for
 * a token that did not verify, `insufficient_scope` with the scopes needed for one that lacks
 * them. The local reply (src/proxy/local-reply.ts) adds it to its answer.
 */
import { GatewayError } from '../errors';

/** No credential where the route (or identity.jwt.required) says one is needed (PC_TOKEN_REQUIRED). */
export class TokenRequired extends GatewayError {
  constructor(readonly required: readonly string[]) {
    super('PC_TOKEN_REQUIRED', 'this gateway requires an access token', ['no Authorization presented']);
  }
}

/** A valid token without the scopes the route requires (PC_INSUFFICIENT_SCOPE). */
export class InsufficientScope extends GatewayError {
  constructor(readonly required: readonly string[]) {
    super('PC_INSUFFICIENT_SCOPE', 'the token lacks a scope this route requires', [`token lacks scope: ${required.join(' ')}`]);
  }
}

// A credential that is not a known key is, to an OAuth client, a token that did not verify (RFC 6750 §3.1).
const INVALID_TOKEN: ReadonlySet<string> = new Set(['PC_TOKEN_INVALID', 'PC_TOKEN_EXPIRED', 'PC_TOKEN_AUDIENCE', 'PC_UNKNOWN_AGENT']);

/** A quoted-string value: the gateway's own text, with anything that could end the quotes removed. */
function quoted(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]|["\\]/g, '')}"`;
}

/**
 * The challenge for a refusal, or null when the refusal is not a token's. `resourceMetadata` (an
 * MCP route's RFC 9728 metadata URL) is added as `resource_metadata`, so a client that got a
 * 401 or 403 can find the authorization server (RFC 9728 §5.1).
 */
export function bearerChallenge(err: GatewayError, resourceMetadata: string | null = null): string | null {
  const prm = resourceMetadata === null ? '' : `, resource_metadata=${quoted(resourceMetadata)}`;
  if (err instanceof TokenRequired) return `Bearer realm="portcullis"${prm}${err.required.length > 0 ? `, scope=${quoted(err.required.join(' '))}` : ''}`;
  if (err instanceof InsufficientScope)
    return `Bearer realm="portcullis"${prm}, error="insufficient_scope", scope=${quoted(err.required.join(' '))}, error_description=${quoted(err.message)}`;
  if (INVALID_TOKEN.has(err.code)) return `Bearer realm="portcullis"${prm}, error="invalid_token", error_description=${quoted(err.message)}`;
  // A 401 must say how to authenticate (RFC 9110 §15.5.2): an Authorization that is not Bearer.
  if (err.code === 'PC_BAD_AUTHORIZATION') return `Bearer realm="portcullis"${prm}, error="invalid_request", error_description=${quoted(err.message)}`;
  return null;
}

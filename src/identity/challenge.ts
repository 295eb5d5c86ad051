/**
 * The `WWW-Authenticate` challenge of a refused bearer token (RFC 6750 §3): `invalid_token` for
 * a token that did not verify, `insufficient_scope` with the scopes needed for one that lacks
 * them. The local reply (src/proxy/local-reply.ts) adds it to its answer.
 */
import { GatewayError } from '../errors';

/** A valid token without the scopes the gateway requires (PC_INSUFFICIENT_SCOPE). */
export class InsufficientScope extends GatewayError {
  constructor(readonly required: readonly string[]) {
    super('PC_INSUFFICIENT_SCOPE', 'the token lacks a scope this gateway requires', [`token lacks scope: ${required.join(' ')}`]);
  }
}

const INVALID_TOKEN: ReadonlySet<string> = new Set(['PC_TOKEN_INVALID', 'PC_TOKEN_EXPIRED', 'PC_TOKEN_AUDIENCE']);

/** A quoted-string value: the gateway's own text, with anything that could end the quotes removed. */
function quoted(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]|["\\]/g, '')}"`;
}

/** The challenge for a refusal, or null when the refusal is not a token's. */
export function bearerChallenge(err: GatewayError): string | null {
  if (err instanceof InsufficientScope)
    return `Bearer realm="portcullis", error="insufficient_scope", scope=${quoted(err.required.join(' '))}, error_description=${quoted(err.message)}`;
  if (INVALID_TOKEN.has(err.code)) return `Bearer realm="portcullis", error="invalid_token", error_description=${quoted(err.message)}`;
  return null;
}

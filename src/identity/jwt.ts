/**
 * The JWT method: an OAuth access token (RFC 9068) or any signed JWT from a configured issuer,
 * in `Authorization: Bearer <token>`. Every cryptographic step is `jose`'s: the issuer's keys
 * come from createRemoteJWKSet (cached; an unknown `kid` refetches them at most once per
 * cooldown) and the token is checked by jwtVerify against an explicit algorithm allow-list
 * (asymmetric only: the config refuses `none` and HS*), the issuer, the audience, `exp`/`nbf`
 * with a bounded clock skew, and the required claims. This file parses no token itself.
 */
import { createLocalJWKSet, createRemoteJWKSet, errors, type JWTPayload, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { JwtIdentityConfig } from '../config/types';
import { GatewayError } from '../errors';
import type { AgentIdentity, IdentityMethod } from './identity-method';

/** Three base64url segments (the last may be empty, as in `alg: none`): a JWS in compact form. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** How long a discovery or JWKS fetch may take. */
const FETCH_TIMEOUT_MS = 5000;

/** Where the method reports what the agent is not told (an unreachable issuer). */
export interface JwtMethodLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** Builds the JWT method. Nothing is fetched until the first token arrives. */
export function jwtMethod(cfg: JwtIdentityConfig, log?: JwtMethodLog): IdentityMethod {
  let keys: Promise<JWTVerifyGetKey> | null = null;
  const getKeys = (): Promise<JWTVerifyGetKey> => {
    keys ??= resolveKeys(cfg).catch((err: unknown) => {
      keys = null; // try discovery again on the next token
      throw err;
    });
    return keys;
  };
  return {
    name: 'jwt',
    async identify({ bearer, resource }) {
      if (!COMPACT_JWS.test(bearer)) return null;
      let payload: JWTPayload;
      try {
        const verified = await jwtVerify(bearer, await getKeys(), {
          issuer: cfg.issuer,
          // On an MCP route, a token meant for that route (RFC 8707 resource indicator) is too;
          // one meant for another route is not.
          audience: resource === null ? cfg.audience : [cfg.audience, resource],
          algorithms: [...cfg.algorithms],
          clockTolerance: cfg.clockSkewS,
          requiredClaims: ['exp', ...cfg.requiredClaims],
        });
        payload = verified.payload;
      } catch (err) {
        throw refusal(err, cfg, log);
      }
      return identityOf(payload, cfg);
    },
  };
}

/** The key source: the configured jwks_uri, or the one the issuer's discovery document names. */
async function resolveKeys(cfg: JwtIdentityConfig): Promise<JWTVerifyGetKey> {
  const uri = cfg.jwksUri ?? (await discoverJwksUri(cfg.issuer));
  const remote = createRemoteJWKSet(new URL(uri), { timeoutDuration: FETCH_TIMEOUT_MS });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      // The issuer is unreachable (or answers garbage) while the cached set has gone stale or
      // a kid was unknown: keep verifying against the keys last fetched. An unknown kid is
      // still refused, by that local set.
      const cached = remote.jwks();
      if (cached === undefined || err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      return createLocalJWKSet(cached)(header, token);
    }
  };
}

/** OpenID Connect Discovery 1.0 §4: `<issuer>/.well-known/openid-configuration`, whose issuer must be ours. */
async function discoverJwksUri(issuer: string): Promise<string> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error', headers: { accept: 'application/json' } });
  if (res.status !== 200) throw new Error(`discovery at ${url} answered ${res.status}`);
  const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (doc.issuer !== issuer) throw new Error(`discovery at ${url} names issuer ${JSON.stringify(doc.issuer)}, not ${JSON.stringify(issuer)}`);
  if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri)) throw new Error(`discovery at ${url} has no http(s) jwks_uri`);
  return doc.jwks_uri;
}

/** The refusal for a token jose did not accept. The reasons name the check, never the token. */
function refusal(err: unknown, cfg: JwtIdentityConfig, log?: JwtMethodLog): GatewayError {
  if (err instanceof errors.JWTExpired) return new GatewayError('PC_TOKEN_EXPIRED', 'the token has expired', ['token expired']);
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return new GatewayError('PC_TOKEN_AUDIENCE', 'the token is not meant for this gateway', ['token audience not accepted']);
    if (err.claim === 'nbf') return new GatewayError('PC_TOKEN_INVALID', 'the token is not valid yet', ['token not yet valid']);
    if (err.claim === 'iss')
      return new GatewayError('PC_TOKEN_INVALID', 'the token is from an issuer this gateway does not trust', ['token issuer not accepted']);
    return new GatewayError('PC_TOKEN_INVALID', 'the token lacks a required claim or has an invalid one', [`token claim not accepted: ${err.claim}`]);
  }
  if (err instanceof errors.JOSEAlgNotAllowed)
    return new GatewayError('PC_TOKEN_INVALID', 'the token is signed with an algorithm this gateway does not accept', ['token algorithm not accepted']);
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return new GatewayError('PC_TOKEN_INVALID', 'the token signature does not verify', ['token signature invalid']);
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
    return new GatewayError('PC_TOKEN_INVALID', 'no key of the issuer verifies the token', ['token signing key unknown']);
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid || err instanceof errors.JOSENotSupported)
    return new GatewayError('PC_TOKEN_INVALID', 'the token is malformed', ['token malformed']);
  // Anything else is the issuer's side: its discovery document or keys could not be had.
  log?.warn({ issuer: cfg.issuer, err: err instanceof Error ? err.message : String(err) }, "the token issuer's keys could not be fetched; refusing its tokens");
  return new GatewayError('PC_TOKEN_INVALID', "the token could not be verified: the issuer's keys are unavailable", ['token signing keys unavailable']);
}

/** The claim at a dotted path (`act.sub`), or undefined. */
function claimAt(payload: JWTPayload, path: string): unknown {
  let v: unknown = payload;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function optionalString(payload: JWTPayload, path: string): string | null {
  const v = claimAt(payload, path);
  if (v === undefined) return null;
  if (typeof v !== 'string' || v === '') throw new GatewayError('PC_TOKEN_INVALID', 'the token has an invalid claim', [`token claim not a string: ${path}`]);
  return v;
}

function scopesOf(payload: JWTPayload): readonly string[] {
  if (typeof payload.scope === 'string') return Object.freeze(payload.scope.split(' ').filter(Boolean));
  const scp = payload.scp;
  if (Array.isArray(scp) && scp.every((s) => typeof s === 'string')) return Object.freeze([...scp]);
  return Object.freeze([]);
}

function identityOf(payload: JWTPayload, cfg: JwtIdentityConfig): AgentIdentity {
  const id = optionalString(payload, cfg.agentClaim);
  if (id === null) throw new GatewayError('PC_TOKEN_INVALID', 'the token does not name the agent', [`token lacks the agent claim: ${cfg.agentClaim}`]);
  const scopes = scopesOf(payload);
  const claims: Record<string, unknown> = {};
  for (const name of cfg.claimsToPolicy) {
    const v = claimAt(payload, name);
    if (v !== undefined) claims[name] = v;
  }
  return Object.freeze({
    id,
    method: 'jwt',
    issuer: payload.iss ?? null,
    subject: payload.sub ?? null,
    client_id: optionalString(payload, 'client_id') ?? optionalString(payload, 'azp'),
    scopes,
    claims: Object.freeze(claims),
    on_behalf_of: optionalString(payload, cfg.onBehalfOfClaim),
  });
}

/**
 * The JWT method: an OAuth access token (RFC 9068) or any signed JWT from a configured issuer,
 * in `Authorization: Bearer <token>`. Every cryptographic step is `jose`'s: the issuer's keys
 * come from createRemoteJWKSet (cached; an unknown `kid` refetches them at most once per
 * cooldown) and the token is checked by jwtVerify against an explicit algorithm allow-list
 * (asymmetric only: the config refuses `none` and HS*), the issuer, the audience, `exp`/`nbf`
 * with a bounded clock skew, and the required claims. This file parses no token itself.
 *
 * A token that verified is remembered, so an agent re-presenting it is not verified again on
 * every call (an ES256 verification is most of a token's cost): keyed by the whole token (its
 * signature included) and the audience asked for, until the earlier of its `exp` and
 * VERIFIED_TTL_MS after it verified, and at most VERIFIED_MAX entries. What is remembered is
 * exactly what a verification at that moment would have answered (see `verifiedCache`).
 */
import { createLocalJWKSet, createRemoteJWKSet, errors, type JWTPayload, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { JwtIdentityConfig } from '../config/types';
import { GatewayError } from '../errors';
import type { AgentIdentity, IdentityMethod } from './identity-method';

/** Three base64url segments (the last may be empty, as in `alg: none`): a JWS in compact form. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** How long a discovery or JWKS fetch may take. */
const FETCH_TIMEOUT_MS = 5000;

/** Longest a verified token is answered from memory before it is verified again. */
export const VERIFIED_TTL_MS = 60_000;
/** Most verified tokens remembered (oldest forgotten first). */
export const VERIFIED_MAX = 1024;

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
  const verified = verifiedCache();
  return {
    name: 'jwt',
    async identify({ bearer, resource }) {
      if (!COMPACT_JWS.test(bearer)) return null;
      const cacheKey = `${resource ?? ''} ${bearer}`;
      const known = verified.get(cacheKey);
      if (known) return known;
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
      const identity = identityOf(payload, cfg);
      verified.set(cacheKey, identity, payload.exp as number);
      return identity;
    },
  };
}

/**
 * Tokens that verified, with the identity they gave. Why answering from it is safe:
 * - the key is the whole compact token: a token differing in any byte (another signature on the
 *   same header and claims, a changed claim) is not found and is verified; and the audience
 *   asked for (the MCP route's resource), so a token accepted on one route is not taken as
 *   accepted on another;
 * - only a token that passed every check, and gave an identity (agent claim, required scopes),
 *   is stored; a refusal is never remembered, so it is re-checked (and audited) every time;
 * - an entry ends at the token's `exp` (without the clock skew jose allows: stricter), so an
 *   expired token is verified, and refused, again; `nbf` had passed when it was stored;
 * - and VERIFIED_TTL_MS after it was stored, so a token keeps meeting the key set (which jose
 *   refetches when 10 minutes old) at least once a minute: a key the issuer withdraws stops
 *   being honoured at most a minute later than without this memory;
 * - the configuration is fixed for the method's life (a reload builds a new method), and the
 *   identity stored is frozen throughout (claims included), so a caller cannot change what the next call is given;
 * - VERIFIED_MAX bounds its memory; only tokens signed by the issuer get in, and a flood of
 *   them only makes older ones be verified again.
 */
function verifiedCache() {
  const entries = new Map<string, { identity: AgentIdentity; untilMs: number }>();
  return {
    get(key: string): AgentIdentity | null {
      const entry = entries.get(key);
      if (!entry) return null;
      if (Date.now() < entry.untilMs) return entry.identity;
      entries.delete(key);
      return null;
    },
    set(key: string, identity: AgentIdentity, exp: number): void {
      const untilMs = Math.min(exp * 1000, Date.now() + VERIFIED_TTL_MS);
      if (!(untilMs > Date.now())) return;
      entries.delete(key);
      if (entries.size >= VERIFIED_MAX) entries.delete(entries.keys().next().value as string);
      entries.set(key, { identity, untilMs });
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

/** `v` with every object and array in it frozen: an identity may be handed to many calls. */
function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const inner of Object.values(v)) deepFreeze(inner);
  }
  return v;
}

function identityOf(payload: JWTPayload, cfg: JwtIdentityConfig): AgentIdentity {
  const id = optionalString(payload, cfg.agentClaim);
  if (id === null) throw new GatewayError('PC_TOKEN_INVALID', 'the token does not name the agent', [`token lacks the agent claim: ${cfg.agentClaim}`]);
  const scopes = scopesOf(payload);
  const claims: Record<string, unknown> = {};
  for (const name of cfg.claimsToPolicy) {
    const v = claimAt(payload, name);
    if (v !== undefined) claims[name] = deepFreeze(v);
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

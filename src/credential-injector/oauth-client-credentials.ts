/**
 * `type: oauth2_client_credentials`: the gateway's own token from the authorization server
 * (RFC 6749 §4.4), with the configured scope, audience and resource (RFC 8707), attached as
 * `Authorization: Bearer` to allowed calls.
 *
 * A decision may ask for narrower scopes (a subset of the configured ones; anything else is a
 * policy error): they are their own cache entry, so a call gets a token with no more than it
 * needs. Tokens are cached until shortly before they expire, one request in flight per scope
 * set, and a cached token is returned synchronously as a prebuilt attachment. A token that
 * cannot be obtained refuses the call 503 PC_CREDENTIAL_UNAVAILABLE; obtain() runs only after
 * the allow, so a denied call never costs a token request.
 */
import type { OAuthClientCredentialsConfig, TokenEndpointConfig } from '../config/types';
import type { BrokerContext } from './broker-context';
import { MintedTokens } from './minted-tokens';
import type { Attachment, CredentialCall, CredentialHealth, CredentialProvider } from './provider';
import { type CachedToken, refreshAt, TokenCache } from './token-cache';
import { TokenEndpointError, type TokenEndpoint, tokenEndpoint } from './token-endpoint';

/** Lifetime assumed for a token whose response has no expires_in (RFC 6749 makes it optional). */
export const DEFAULT_LIFETIME_S = 60;

/** A cached token, ready to attach. */
export interface MintedEntry extends CachedToken {
  readonly token: string;
  readonly attachment: Attachment;
}

/** What an OAuth provider counts for health(). */
export class OAuthCounters {
  fetches = 0;
  cacheHits = 0;
  failures = 0;
  lastError: string | null = null;
  lastFetchOk = true;
}

/** A client credentials provider; `accessToken` gives the raw token to a token exchange (its actor_token). */
export interface ClientCredentialsProvider extends CredentialProvider {
  readonly type: 'oauth2_client_credentials';
  /** The token with the configured scopes (cached like any call's). */
  accessToken(): string | Promise<string>;
}

/**
 * The scopes a call asks for, checked against the configured ones: null (the configured set)
 * when the decision asked for none or for exactly those, else the sorted subset. Throws
 * PC_POLICY_ERROR for a scope the credential is not configured for.
 */
export function narrowScopes(name: string, configured: readonly string[], asked: readonly string[] | null, broker: BrokerContext): readonly string[] | null {
  if (asked === null) return null;
  for (const s of asked)
    if (!configured.includes(s))
      throw broker.cannotGrant(
        name,
        configured.length
          ? `scope ${JSON.stringify(s)} is beyond its configured scope (${configured.join(' ')})`
          : `scope ${JSON.stringify(s)} asked of a credential configured with no scope`,
      );
  if (asked.length === configured.length) return null;
  return [...asked].sort();
}

/** The form parameters both OAuth grants take from the configuration. */
export function targetParams(config: TokenEndpointConfig, scopes: readonly string[]): Record<string, string> {
  return {
    ...(scopes.length ? { scope: scopes.join(' ') } : {}),
    ...(config.audience !== null ? { audience: config.audience } : {}),
    ...(config.resource !== null ? { resource: config.resource } : {}),
  };
}

/** Turns a token endpoint failure into the call's refusal (anything else is a bug and stays one). */
export function unavailableFrom(name: string, err: unknown, broker: BrokerContext, counters: OAuthCounters): Error {
  counters.failures++;
  counters.lastFetchOk = false;
  if (err instanceof TokenEndpointError) {
    counters.lastError = err.message;
    return broker.unavailable(name, err.message);
  }
  counters.lastError = 'internal error while obtaining the token';
  broker.log.error({ credential: name, err: (err as Error).message }, 'obtaining a token failed');
  return broker.unavailable(name, 'internal error while obtaining the token');
}

/** The health of an OAuth provider. */
export function oauthHealth(name: string, type: string, counters: OAuthCounters, soonest: number | null): CredentialHealth {
  const now = Date.now();
  return {
    name,
    type,
    ok: counters.lastFetchOk || soonest !== null,
    fetches: counters.fetches,
    cacheHits: counters.cacheHits,
    failures: counters.failures,
    expiresInS: soonest === null ? null : Math.floor((soonest - now) / 1000),
    lastError: counters.lastError,
  };
}

/** The provider of an oauth2_client_credentials credential. */
export function clientCredentialsProvider(credential: OAuthClientCredentialsConfig, broker: BrokerContext): ClientCredentialsProvider {
  const { name, endpoint: config } = credential;
  const log = broker.log;
  let endpoint: TokenEndpoint | null = null;
  const counters = new OAuthCounters();
  const cache = new TokenCache<MintedEntry>();
  let minted: MintedTokens | null = null;
  /** The cache key of the configured scopes (a narrower set's key is its scopes, space-separated, sorted). */
  const DEFAULT_KEY = '\u0000configured';

  /** Built at the first call: reading the key material and the masker are not start-up work a call never needs. */
  function parts(): { endpoint: TokenEndpoint; minted: MintedTokens } {
    endpoint ??= tokenEndpoint(name, config, log);
    minted ??= new MintedTokens(name, endpoint.clientSecret !== null ? [endpoint.clientSecret] : []);
    return { endpoint, minted };
  }

  async function mint(scopes: readonly string[]): Promise<MintedEntry> {
    const { endpoint: ep, minted: tokens } = parts();
    counters.fetches++;
    let res: Awaited<ReturnType<TokenEndpoint['requestToken']>>;
    try {
      res = await ep.requestToken({ grant_type: 'client_credentials', ...targetParams(config, scopes) });
    } catch (err) {
      throw unavailableFrom(name, err, broker, counters);
    }
    counters.lastFetchOk = true;
    const now = Date.now();
    const expiresAtMs = now + (res.expiresIn ?? DEFAULT_LIFETIME_S) * 1000;
    tokens.add(res.accessToken, expiresAtMs, now);
    log.debug({ credential: name, scopes: res.scope ?? scopes, expires_in: res.expiresIn }, 'token obtained');
    return Object.freeze({
      token: res.accessToken,
      expiresAtMs,
      refreshAtMs: refreshAt(now, expiresAtMs, config.refreshBeforeS),
      attachment: tokens.attachment(res.accessToken, res.scope ?? scopes, broker.fingerprint(res.accessToken)),
    });
  }

  function entry(scopes: readonly string[] | null): MintedEntry | Promise<MintedEntry> {
    const key = scopes === null ? DEFAULT_KEY : scopes.join(' ');
    const hit = cache.usable(key, Date.now());
    if (hit !== null) {
      counters.cacheHits++;
      return hit;
    }
    return cache.fetch(key, () => mint(scopes ?? config.scope));
  }

  return {
    name,
    type: 'oauth2_client_credentials',
    needsCaller: false,
    obtain(call: CredentialCall) {
      const e = entry(narrowScopes(name, config.scope, call.scopes, broker));
      return e instanceof Promise ? e.then((m) => m.attachment) : e.attachment;
    },
    accessToken() {
      const e = entry(null);
      return e instanceof Promise ? e.then((m) => m.token) : e.token;
    },
    secrets: () => parts().minted.secrets,
    health: () => oauthHealth(name, 'oauth2_client_credentials', counters, cache.soonestExpiry(Date.now())),
    close() {
      void endpoint?.close();
    },
  };
}

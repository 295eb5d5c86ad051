/**
 * `type: oauth2_token_exchange` (RFC 8693): the caller's verified token (the subject_token) is
 * exchanged at the authorization server for one scoped to the upstream — its audience, resource
 * and scopes from the configuration or, narrower, from the decision — with the gateway's own
 * client-credentials token as the actor_token when `actor` names one. The upstream sees the
 * exchanged token (the user, and the agent in `act` when the server adds it), never the token
 * the agent presented.
 *
 * A caller identified otherwise (an agent key, a client certificate) has no token to exchange:
 * the call is refused as a policy error (PC_POLICY_ERROR), since the policy allowed a call this
 * route's credential cannot serve. Exchanged tokens are cached per (subject token, scopes) —
 * audience and resource are fixed per credential — never past the subject token's own expiry
 * nor the exchanged token's, one exchange in flight per key.
 */
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { OAuthTokenExchangeConfig } from '../config/types';
import type { BrokerContext } from './broker-context';
import {
  type ClientCredentialsProvider,
  DEFAULT_LIFETIME_S,
  type MintedEntry,
  narrowScopes,
  OAuthCounters,
  oauthHealth,
  targetParams,
  unavailableFrom,
} from './oauth-client-credentials';
import { MintedTokens } from './minted-tokens';
import type { CredentialCall, CredentialProvider } from './provider';
import { refreshAt, TokenCache } from './token-cache';
import { type TokenEndpoint, tokenEndpoint } from './token-endpoint';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

/** Why a call without a subject token is refused. */
export const NO_SUBJECT_TOKEN = 'token exchange needs a caller identified by a token (identity.jwt); this caller presented none';

/** The provider of an oauth2_token_exchange credential; `actor` is the provider of its `actor` credential. */
export function tokenExchangeProvider(
  credential: OAuthTokenExchangeConfig,
  broker: BrokerContext,
  actor: ClientCredentialsProvider | null,
): CredentialProvider {
  const { name, endpoint: config } = credential;
  const log = broker.log;
  const counters = new OAuthCounters();
  const cache = new TokenCache<MintedEntry>();
  let endpoint: TokenEndpoint | null = null;
  let minted: MintedTokens | null = null;

  function parts(): { endpoint: TokenEndpoint; minted: MintedTokens } {
    endpoint ??= tokenEndpoint(name, config, log);
    minted ??= new MintedTokens(name, endpoint.clientSecret !== null ? [endpoint.clientSecret] : []);
    return { endpoint, minted };
  }

  async function exchange(subjectToken: string, subjectExpMs: number | null, scopes: readonly string[]): Promise<MintedEntry> {
    const { endpoint: ep, minted: tokens } = parts();
    let actorToken: string | null = null;
    if (actor !== null) {
      try {
        actorToken = await actor.accessToken();
      } catch (err) {
        counters.failures++;
        counters.lastFetchOk = false;
        counters.lastError = `the actor credential ${actor.name} could not be obtained`;
        log.warn({ credential: name, actor: actor.name, err: (err as Error).message }, 'no actor token for the token exchange');
        throw broker.unavailable(name, `the actor credential ${actor.name} could not be obtained`);
      }
    }
    counters.fetches++;
    let res: Awaited<ReturnType<TokenEndpoint['requestToken']>>;
    try {
      res = await ep.requestToken(
        {
          grant_type: GRANT,
          subject_token: subjectToken,
          subject_token_type: ACCESS_TOKEN,
          requested_token_type: ACCESS_TOKEN,
          ...(actorToken !== null ? { actor_token: actorToken, actor_token_type: ACCESS_TOKEN } : {}),
          ...targetParams(config, scopes),
        },
        actorToken !== null ? [subjectToken, actorToken] : [subjectToken],
      );
    } catch (err) {
      throw unavailableFrom(name, err, broker, counters);
    }
    counters.lastFetchOk = true;
    const now = Date.now();
    let expiresAtMs = now + (res.expiresIn ?? DEFAULT_LIFETIME_S) * 1000;
    // Never cached past the subject token's own expiry: the user's grant ends there.
    if (subjectExpMs !== null && subjectExpMs < expiresAtMs) expiresAtMs = subjectExpMs;
    tokens.add(res.accessToken, now + (res.expiresIn ?? DEFAULT_LIFETIME_S) * 1000, now);
    log.debug({ credential: name, scopes: res.scope ?? scopes, expires_in: res.expiresIn }, 'token exchanged');
    return Object.freeze({
      token: res.accessToken,
      expiresAtMs,
      refreshAtMs: refreshAt(now, expiresAtMs, config.refreshBeforeS),
      attachment: tokens.attachment(res.accessToken, res.scope ?? scopes, broker.fingerprint(res.accessToken)),
    });
  }

  return {
    name,
    type: 'oauth2_token_exchange',
    // The subject token is the caller's.
    needsCaller: true,
    obtain(call: CredentialCall) {
      const subject = call.subjectToken;
      if (subject === null) throw broker.cannotGrant(name, NO_SUBJECT_TOKEN);
      const scopes = narrowScopes(name, config.scope, call.scopes, broker);
      const key = `${createHash('sha256').update(subject).digest('base64url')} ${scopes === null ? '' : scopes.join(' ')}`;
      const now = Date.now();
      const hit = cache.usable(key, now);
      if (hit !== null) {
        counters.cacheHits++;
        return hit.attachment;
      }
      // The subject token was verified by the identity stage: only its exp is read here.
      let exp: unknown;
      try {
        exp = decodeJwt(subject).exp;
      } catch {
        throw broker.cannotGrant(name, "the caller's token is not a JWT, so its expiry is unknown");
      }
      const subjectExpMs = typeof exp === 'number' ? exp * 1000 : null;
      if (subjectExpMs !== null && subjectExpMs <= now) throw broker.unavailable(name, "the caller's token has expired");
      return cache.fetch(key, () => exchange(subject, subjectExpMs, scopes ?? config.scope)).then((m) => m.attachment);
    },
    secrets: () => parts().minted.secrets,
    health: () => oauthHealth(name, 'oauth2_token_exchange', counters, cache.soonestExpiry(Date.now())),
    close() {
      void endpoint?.close();
    },
  };
}

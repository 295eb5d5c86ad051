/**
 * Least privilege, chosen by the policy: which of the route's credentials this call gets, and
 * with which scopes. The decision may name a label (`"credential": "read"`) and ask for
 * `"scopes"` narrower than the credential's configured ones; a silent decision gets the route's
 * default. Anything else the decision says about credentials is a policy error, so the call is
 * denied: a route with several credentials and no default, an unknown label, scopes that are
 * not a list of scope strings, or scopes for a route without a credential.
 */
import { GatewayError } from '../errors';
import type { Decision } from '../policy/engine';
import type { CredentialCall, CredentialProvider } from './provider';

/** What a call gets: a provider and the scopes to ask it for (null: the configured ones). */
export interface CredentialChoice {
  readonly provider: CredentialProvider;
  readonly scopes: readonly string[] | null;
}

/** The route's side of the choice. */
export interface CredentialOptions {
  readonly providers: ReadonlyMap<string, CredentialProvider>;
  /** What a decision silent about credentials gets: the default provider with its configured scopes; null when none. */
  readonly defaultChoice: CredentialChoice | null;
}

/** The choice of a silent decision, built once per route. */
export function defaultChoiceOf(provider: CredentialProvider | null): CredentialChoice | null {
  return provider === null ? null : Object.freeze({ provider, scopes: null });
}

/** The call a provider that does not read the caller gets when no scopes are asked. */
export const NO_CALLER: CredentialCall = Object.freeze({ identity: null, subjectToken: null, scopes: null });

const SCOPE = /^[!#-[\]-~]{1,128}$/;

function policyError(reason: string): GatewayError {
  return new GatewayError('PC_POLICY_ERROR', 'the policy chose a credential the route does not have', [`policy error: ${reason}`]);
}

/** The credential a decision chose on a route; null when the route attaches none. */
export function chooseCredential(route: CredentialOptions, decision: Decision): CredentialChoice | null {
  const extra = decision.extra;
  const label = extra?.credential;
  const scopes = extra?.scopes;
  if (label === undefined && scopes === undefined) {
    // The hot path: a silent decision.
    if (route.defaultChoice !== null) return route.defaultChoice;
    if (route.providers.size === 0) return null;
    throw policyError(`the route has several credentials (${[...route.providers.keys()].join(', ')}), no default_credential, and the decision named none`);
  }
  let provider: CredentialProvider | null;
  if (label === undefined) provider = route.defaultChoice?.provider ?? null;
  else if (typeof label !== 'string') throw policyError("decision.credential must be a string (a label under the route's credentials)");
  else {
    provider = route.providers.get(label) ?? null;
    if (provider === null)
      throw policyError(
        `decision.credential ${JSON.stringify(label.slice(0, 64))} is not one of the route's credentials (${[...route.providers.keys()].join(', ') || 'none'})`,
      );
  }
  if (provider === null) {
    if (route.providers.size === 0) throw policyError('decision.scopes given on a route without a credential');
    throw policyError('decision.scopes given without decision.credential on a route with several credentials and no default_credential');
  }
  if (scopes === undefined) return { provider, scopes: null };
  if (!Array.isArray(scopes) || scopes.length === 0 || scopes.length > 64 || !scopes.every((s) => typeof s === 'string' && SCOPE.test(s)))
    // Empty is refused too: a token request without scope gets the server's default, often everything.
    throw policyError('decision.scopes must be a list of 1 to 64 OAuth scopes (printable ASCII, no spaces)');
  return { provider, scopes: Object.freeze([...new Set(scopes as string[])]) };
}

/** The caller's bearer token when a token identified it: a token exchange's subject_token. */
export function subjectTokenOf(method: string | undefined, authorization: string | undefined): string | null {
  if (method !== 'jwt' || authorization === undefined) return null;
  const m = /^Bearer +(\S+) *$/i.exec(authorization);
  return m ? m[1] : null;
}

/**
 * What the answers of a route with several credentials must not carry: the secrets of every
 * credential of the route, not only the one the decision attached. The upstream holds them all
 * and may echo another one (a "recent requests" page, an API-keys endpoint): a call given the
 * read credential must not hand the agent the write one (G2, G28).
 *
 * The union is compiled again only when one of the maskers changed (a rotation, a new token, a
 * per-call SigV4 signature); a route with one credential uses the attachment's secrets as they are.
 */
import type { ResponseSecrets } from './injector';
import { ResponseMasker } from './masker';
import type { CredentialProvider } from './provider';

/** Maps the attached credential's secrets to the ones a call's answer is masked with. */
export type RouteSecrets = (attached: ResponseSecrets) => ResponseSecrets;

/** The route's masking over all its providers; null when it has at most one. */
export function routeSecrets(name: string, providers: readonly CredentialProvider[]): RouteSecrets | null {
  const distinct = [...new Set(providers)];
  if (distinct.length <= 1) return null;
  let lastMaskers: readonly ResponseMasker[] = [];
  let last: ResponseSecrets | null = null;
  return (attached) => {
    const maskers = [attached.masker, ...distinct.map((p) => p.secrets().masker)];
    if (last !== null && maskers.length === lastMaskers.length && maskers.every((m, i) => m === lastMaskers[i])) return last;
    lastMaskers = maskers;
    last = Object.freeze({ name, masker: ResponseMasker.union(maskers) });
    return last;
  };
}

/**
 * Method overrides. Many frameworks (Rails, Laravel, Symfony, Express's method-override, ASP.NET,
 * Google APIs) run a request as the method named in `X-HTTP-Method-Override`, `X-Method-Override`,
 * `X-HTTP-Method`, a `_method` query parameter or a `_method` form field, not the one on the
 * request line: a GET the policy allowed would run upstream as a DELETE. Such requests are
 * refused (PC_METHOD_OVERRIDE), never stripped: the agent asked for something the policy did not
 * judge, and a silent GET would surprise it as much as a silent DELETE would.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors';
import type { CanonicalTarget } from './canonical-path';
import { normalisedHeaderName } from './headers';

/** Header names (normalised: lower case, `_` read as `-`) that override the method. */
const OVERRIDE_HEADERS = new Set(['x-http-method-override', 'x-method-override', 'x-http-method']);

/** The query parameter and form field name, compared case-insensitively. */
const OVERRIDE_FIELD = '_method';

function refuse(where: string): never {
  throw new GatewayError('PC_METHOD_OVERRIDE', `a method override (${where}) is not accepted: send the method on the request line`);
}

function isFormBody(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === 'application/x-www-form-urlencoded';
}

/** Throws PC_METHOD_OVERRIDE when a header, the query or a form body names another method. */
export function assertNoMethodOverride(headers: IncomingHttpHeaders, query: CanonicalTarget['query'], body: Buffer): void {
  for (const name in headers) if (OVERRIDE_HEADERS.has(normalisedHeaderName(name))) refuse(`the ${name} header`);
  for (const [k] of query) if (k.length === OVERRIDE_FIELD.length && k.toLowerCase() === OVERRIDE_FIELD) refuse(`the ${k} query parameter`);
  if (body.length === 0 || !isFormBody(headers['content-type'])) return;
  // Read the way the frameworks that honour `_method` read it: keys decoded (`%5Fmethod` too).
  for (const [k] of new URLSearchParams(body.toString('utf8'))) if (k.toLowerCase() === OVERRIDE_FIELD) refuse(`the ${k} form field`);
}

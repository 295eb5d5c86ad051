/**
 * The token endpoint of the credential workloads (BENCH_WORKLOADS=cred): a real node:http
 * server on 127.0.0.1:0, in the orchestrator's process, answering the two grants the OAuth
 * credential types send: client credentials (RFC 6749 §4.4) and token exchange (RFC 8693),
 * each with `{access_token, token_type: "Bearer", expires_in: 3600, scope}` and a fresh random
 * opaque token. It checks what a real authorization server would (the client's id and secret,
 * by client_secret_post or client_secret_basic; for an exchange, that the subject token is the
 * one the bench's agent presents and the actor token one it issued) and refuses anything else
 * 400, so a gateway sending the wrong request fails the pre-flight. It counts the requests per
 * grant: after the runs the orchestrator checks that the gateways fetched each token a handful
 * of times, not once per call (caching works).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export const TOKEN_PATH = '/oauth/token';
export const CLIENT_ID = 'portcullis-bench';
export const CLIENT_SECRET = 'bench-client-secret-not-a-secret';
const EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** The tokens' lifetime: far longer than a run, so a gateway that caches fetches each once. */
export const TOKEN_LIFETIME_S = 3600;

/** The two grants answered. */
export type Grant = 'client_credentials' | 'token_exchange';

/** A running token endpoint. */
export interface TokenServer {
  readonly tokenUrl: string;
  /** Token requests answered 200, per grant. */
  hits(): Readonly<Record<Grant, number>>;
  /** Requests refused (400/401/404), with why: a non-empty list fails the run. */
  refusals(): readonly string[];
  /** The tokens issued so far for a grant. */
  issued(grant: Grant): ReadonlySet<string>;
  close(): Promise<void>;
}

/**
 * Starts the endpoint. `subjectToken()` is the token the exchange must be asked for (the JWT
 * the bench's agent presents), read at each request.
 */
export async function startTokenServer(subjectToken: () => string | null): Promise<TokenServer> {
  const hits: Record<Grant, number> = { client_credentials: 0, token_exchange: 0 };
  const issued: Record<Grant, Set<string>> = { client_credentials: new Set(), token_exchange: new Set() };
  const refusals: string[] = [];

  const refuse = (res: http.ServerResponse, status: number, error: string, why: string) => {
    refusals.push(why);
    const body = JSON.stringify({ error, error_description: why });
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== TOKEN_PATH) return refuse(res, 404, 'not_found', `${req.method} ${req.url}`);
      if (!/^application\/x-www-form-urlencoded\b/.test(req.headers['content-type'] ?? ''))
        return refuse(res, 400, 'invalid_request', `content-type ${req.headers['content-type']}`);
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      // client_secret_post, or client_secret_basic (each part form-encoded, RFC 6749 §2.3.1).
      let id = form.get('client_id');
      let secret = form.get('client_secret');
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      if (basic) {
        const [u, p] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
        id = decodeURIComponent((u ?? '').replace(/\+/g, ' '));
        secret = decodeURIComponent((p ?? '').replace(/\+/g, ' '));
      }
      if (id !== CLIENT_ID || secret !== CLIENT_SECRET) return refuse(res, 401, 'invalid_client', `client ${id} with a wrong or missing secret`);

      const grantType = form.get('grant_type');
      let grant: Grant;
      if (grantType === 'client_credentials') grant = 'client_credentials';
      else if (grantType === EXCHANGE_GRANT) {
        grant = 'token_exchange';
        if (form.get('subject_token') !== subjectToken()) return refuse(res, 400, 'invalid_grant', 'subject_token is not the agent token');
        if (form.get('subject_token_type') !== ACCESS_TOKEN_TYPE)
          return refuse(res, 400, 'invalid_request', `subject_token_type ${form.get('subject_token_type')}`);
        const actor = form.get('actor_token');
        if (actor !== null && !issued.client_credentials.has(actor)) return refuse(res, 400, 'invalid_grant', 'actor_token was not issued here');
      } else return refuse(res, 400, 'unsupported_grant_type', `grant_type ${grantType}`);

      hits[grant]++;
      const token = `${grant === 'client_credentials' ? 'cc' : 'tx'}-${randomBytes(24).toString('base64url')}`;
      issued[grant].add(token);
      const body = JSON.stringify({
        access_token: token,
        token_type: 'Bearer',
        expires_in: TOKEN_LIFETIME_S,
        scope: form.get('scope') ?? '',
        ...(grant === 'token_exchange' ? { issued_token_type: ACCESS_TOKEN_TYPE } : {}),
      });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    tokenUrl: `http://127.0.0.1:${port}${TOKEN_PATH}`,
    hits: () => ({ ...hits }),
    refusals: () => [...refusals],
    issued: (grant) => issued[grant],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

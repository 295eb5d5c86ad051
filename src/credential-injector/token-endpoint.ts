/**
 * One OAuth token endpoint as the gateway's client: where it is (`token_url`, or the issuer's
 * discovery document, fetched lazily and checked to name that issuer), how the gateway proves
 * who it is (client_secret_basic, client_secret_post, private_key_jwt per RFC 7523,
 * tls_client_auth per RFC 8705), and what a token response must look like. Shared by the client
 * credentials and token exchange providers.
 *
 * Fail closed, and say why without saying too much: every failure (unreachable, slower than
 * timeout_ms, a non-2xx answer, an answer that is not a JSON token response) is a
 * TokenEndpointError whose message is safe for the agent and the audit trail (no body, no
 * secret). The endpoint's own error body goes only to the log, with the client secret and the
 * tokens sent masked out of it in every encoded form.
 */
import { createPrivateKey, type KeyObject, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { BrokerLog } from './broker-context';
import { Agent, request } from 'undici';
import type { TokenEndpointConfig } from '../config/types';
import { revealSecret } from '../secret';
import { ResponseMasker } from './masker';

/** A token endpoint failure; the message names what went wrong and never carries the endpoint's body or a secret. */
export class TokenEndpointError extends Error {
  readonly code = 'token_endpoint_failed';
  constructor(message: string) {
    super(message);
    this.name = 'TokenEndpointError';
  }
}

/** A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1). */
export interface TokenResponse {
  readonly accessToken: string;
  /** Seconds, when the endpoint said. */
  readonly expiresIn: number | null;
  /** The granted scopes, when the endpoint said (else the requested ones were granted). */
  readonly scope: readonly string[] | null;
}

/** A configured token endpoint. */
export interface TokenEndpoint {
  /**
   * POSTs a token request of these form parameters (grant_type included) with the client's
   * authentication. `sensitive` are values sent in it (a subject token) that the log must mask
   * too. Rejects with TokenEndpointError.
   */
  requestToken(params: Record<string, string>, sensitive?: readonly string[]): Promise<TokenResponse>;
  /** The client secret (client_secret_* methods), for the response masker; null otherwise. */
  readonly clientSecret: string | null;
  close(): Promise<void>;
}

/** Most bytes of an answer read (a token response is a few KiB). */
const MAX_ANSWER = 64 * 1024;
/** RFC 6750 §2.1 b64token: all a Bearer header may carry (no space, no control character to smuggle a header). */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]{1,8192}=*$/;
/** Most bytes of an error body put in the log. */
const MAX_LOGGED = 2048;
/** Lifetime of a client assertion (RFC 7523 asks for a short one). */
const ASSERTION_TTL_S = 60;

/** The JWS algorithm for a private key: RS256, ES256/384/512 by curve, EdDSA. */
function assertionAlg(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'ed25519':
      return 'EdDSA';
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ES256';
      if (curve === 'secp384r1') return 'ES384';
      if (curve === 'secp521r1') return 'ES512';
      throw new TokenEndpointError(`the private key's curve ${curve} cannot sign a client assertion`);
    }
    default:
      throw new TokenEndpointError(`a ${key.asymmetricKeyType} key cannot sign a client assertion`);
  }
}

/** The discovery documents an issuer may publish: OpenID Connect's, then RFC 8414's. */
function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const p = url.pathname.replace(/\/$/, '');
  return [`${url.origin}${p}/.well-known/openid-configuration`, `${url.origin}/.well-known/oauth-authorization-server${p}`];
}

/** `credential`: the credential's name, for the log. */
export function tokenEndpoint(credential: string, config: TokenEndpointConfig, log: BrokerLog): TokenEndpoint {
  const auth = config.auth;
  const agent = new Agent({
    connect: {
      timeout: config.timeoutMs,
      ...(config.ca !== null ? { ca: config.ca } : {}),
      ...(auth.method === 'tls_client_auth' ? { cert: auth.cert, key: revealSecret(auth.key) } : {}),
    },
    keepAliveTimeout: 30_000,
  });
  const clientSecret = auth.method === 'client_secret_basic' || auth.method === 'client_secret_post' ? revealSecret(auth.secret) : null;
  const signingKey = auth.method === 'private_key_jwt' ? createPrivateKey(revealSecret(auth.privateKey)) : null;
  const signingAlg = signingKey !== null ? assertionAlg(signingKey) : null;
  let tokenUrl: string | null = config.tokenUrl;
  let discovering: Promise<string> | null = null;

  /** One HTTP exchange, bounded by timeout_ms as a whole; the body read up to MAX_ANSWER. */
  async function exchange(url: string, init: { method: string; headers: Record<string, string>; body?: string }): Promise<{ status: number; body: string }> {
    const signal = AbortSignal.timeout(config.timeoutMs);
    try {
      const res = await request(url, {
        ...init,
        dispatcher: agent,
        signal,
        headersTimeout: config.timeoutMs,
        bodyTimeout: config.timeoutMs,
      });
      let body = '';
      for await (const chunk of res.body) {
        body += (chunk as Buffer).toString('utf8');
        if (body.length > MAX_ANSWER) {
          res.body.destroy();
          throw new TokenEndpointError(`the answer of ${new URL(url).origin} is larger than ${MAX_ANSWER} bytes`);
        }
      }
      return { status: res.statusCode, body };
    } catch (err) {
      if (err instanceof TokenEndpointError) throw err;
      const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
      if (signal.aborted) throw new TokenEndpointError(`${new URL(url).origin} did not answer within ${config.timeoutMs} ms`);
      throw new TokenEndpointError(`${new URL(url).origin} could not be reached (${e.cause?.code ?? e.code ?? e.name})`);
    }
  }

  /** The token endpoint from the issuer's discovery document (once; a failure is retried at the next call). */
  async function discover(issuer: string): Promise<string> {
    let last = '';
    for (const url of discoveryUrls(issuer)) {
      const res = await exchange(url, { method: 'GET', headers: { accept: 'application/json' } });
      if (res.status < 200 || res.status > 299) {
        last = `the discovery document ${url} answered ${res.status}`;
        continue;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(res.body);
      } catch {
        throw new TokenEndpointError(`the discovery document ${url} is not JSON`);
      }
      const { issuer: named, token_endpoint: endpoint } = (doc ?? {}) as { issuer?: unknown; token_endpoint?: unknown };
      if (named !== issuer) throw new TokenEndpointError(`the discovery document ${url} names another issuer (${JSON.stringify(String(named).slice(0, 200))})`);
      if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint))
        throw new TokenEndpointError(`the discovery document ${url} names no http(s) token_endpoint`);
      // The client secret goes to this URL: an https issuer may not send it over plain http.
      if (issuer.startsWith('https:') && !endpoint.startsWith('https:'))
        throw new TokenEndpointError(`the discovery document ${url} names a token_endpoint that is not https`);
      return endpoint;
    }
    throw new TokenEndpointError(last);
  }

  async function endpointUrl(): Promise<string> {
    if (tokenUrl !== null) return tokenUrl;
    discovering ??= discover(config.issuer!).then(
      (url) => {
        tokenUrl = url;
        return url;
      },
      (err) => {
        discovering = null;
        throw err;
      },
    );
    return discovering;
  }

  /** The endpoint's error body for the log: truncated, with every secret sent masked in every form. */
  function forLog(body: string, sensitive: readonly string[]): string {
    const secrets = [...(clientSecret !== null ? [clientSecret] : []), ...sensitive];
    // Masked whole, then cut: a secret across the cut would otherwise be logged half in clear.
    const buf = Buffer.from(body, 'utf8');
    if (secrets.length) new ResponseMasker(secrets).maskBuffer(buf);
    return buf.toString('utf8').slice(0, MAX_LOGGED);
  }

  return {
    clientSecret,
    async requestToken(params, sensitive = []) {
      const url = await endpointUrl();
      const form = new URLSearchParams(params);
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
      switch (auth.method) {
        case 'client_secret_basic':
          // RFC 6749 §2.3.1: each part form-encoded before the Basic encoding.
          headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(config.clientId)}:${encodeURIComponent(clientSecret!)}`).toString('base64')}`;
          break;
        case 'client_secret_post':
          form.set('client_id', config.clientId);
          form.set('client_secret', clientSecret!);
          break;
        case 'private_key_jwt': {
          const assertion = await new SignJWT({})
            .setProtectedHeader({ alg: signingAlg!, typ: 'JWT', ...(auth.kid !== null ? { kid: auth.kid } : {}) })
            .setIssuer(config.clientId)
            .setSubject(config.clientId)
            .setAudience(url)
            .setIssuedAt()
            .setExpirationTime(`${ASSERTION_TTL_S}s`)
            .setJti(randomUUID())
            .sign(signingKey!);
          form.set('client_id', config.clientId);
          form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
          form.set('client_assertion', assertion);
          // A client assertion can be replayed until it expires: the log masks it like the secret.
          sensitive = [...sensitive, assertion];
          break;
        }
        case 'tls_client_auth':
          form.set('client_id', config.clientId);
          break;
      }
      const res = await exchange(url, { method: 'POST', headers, body: form.toString() });
      const origin = new URL(url).origin;
      if (res.status < 200 || res.status > 299) {
        log.warn({ credential, token_endpoint: url, status: res.status, body: forLog(res.body, sensitive) }, 'the token endpoint refused the token request');
        throw new TokenEndpointError(`the token endpoint ${origin} answered ${res.status}`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(res.body);
      } catch {
        log.warn(
          { credential, token_endpoint: url, status: res.status, body: forLog(res.body, sensitive) },
          'the token endpoint answered something that is not JSON',
        );
        throw new TokenEndpointError(`the token endpoint ${origin} answered something that is not JSON`);
      }
      const body = (parsed ?? {}) as { access_token?: unknown; token_type?: unknown; expires_in?: unknown; scope?: unknown };
      if (typeof body.access_token !== 'string' || !B64TOKEN.test(body.access_token)) {
        log.warn({ credential, token_endpoint: url, status: res.status }, 'the token response has no usable access_token');
        throw new TokenEndpointError(`the token response of ${origin} has no usable access_token`);
      }
      if (body.token_type !== undefined && (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer'))
        throw new TokenEndpointError(
          `the token response of ${origin} is not a Bearer token (token_type ${JSON.stringify(String(body.token_type).slice(0, 32))})`,
        );
      const expiresIn = typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : null;
      const scope = typeof body.scope === 'string' ? Object.freeze(body.scope.split(' ').filter(Boolean)) : null;
      return { accessToken: body.access_token, expiresIn, scope };
    },
    close: () => agent.close(),
  };
}

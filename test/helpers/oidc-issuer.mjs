/**
 * A real OAuth 2.0 authorization server for the identity tests: oidc-provider on 127.0.0.1:0,
 * issuing JWT access tokens (RFC 9068) for the resources it is given (RFC 8707). It runs in its
 * own Node process (oidc-provider ships only ES modules, which Jest cannot load), prints
 * `{"issuer": ...}` as its first line, and stops when killed (the tests' "issuer down").
 *
 * argv[2]: JSON {
 *   audiences: [resource indicators it issues tokens for],
 *   scope?: the scopes those resources offer, space-separated (default "tickets:read tickets:write"),
 *   publicClient?: {clientId, redirectUri}: a public client (no secret, PKCE) of the authorization
 *     code grant. Its users sign in at GET /interaction/<uid>?account=<user>, which plays the login
 *     and consent pages: the user is who the browser says, and consents to what was asked.
 *   clients?: more static clients (oidc-provider client metadata, e.g. a private_key_jwt one with its jwks),
 *   ttl?: access token lifetime in seconds (default 300); exchangeTtl?: that of exchanged tokens (default ttl),
 *   tokenExchange?: true registers the RFC 8693 grant (urn:ietf:params:oauth:grant-type:token-exchange):
 *     a valid access token of this issuer as subject_token (and optionally actor_token) is exchanged
 *     for a JWT access token for the requested resource/audience with the subject's sub and, given
 *     an actor_token, `act: {sub: <the actor token's client>}`.
 *   tls?: {cert, key, ca}: serve HTTPS (PEM text), asking for a client certificate of `ca` and
 *     enabling tls_client_auth (RFC 8705) for clients that register tls_client_auth_subject_dn.
 * }
 *
 * stdin, one command a line:
 *   rotate  sign new tokens with a new key; the keys before it stay in the JWKS (an overlap)
 *   retire  drop every key but the one signing from the JWKS
 *     (both answered on stdout with `{"signing": kid, "keys": [kids]}`)
 *   count   answered with `{"tokenRequests": n, "exchanges": m}`: POSTs to /token since start, and
 *     the token exchanges among them that issued a token
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT } from 'jose';
import Provider, { errors } from 'oidc-provider';

const {
  audiences,
  scope = 'tickets:read tickets:write',
  publicClient,
  clients: extraClients = [],
  ttl = 300,
  exchangeTtl = ttl,
  tokenExchange = false,
  tls,
} = JSON.parse(process.argv[2] ?? '{"audiences": []}');
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
let tokenRequests = 0;
let exchanges = 0;

/** A private signing key as a JWK; oidc-provider publishes its public half at /jwks. */
async function signingKey(kid) {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
}

/** The published keys, the one signing first. */
let keys = [await signingKey('issuer-key-1')];

const server = tls
  ? https.createServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: false })
  : http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;

const clients = [
  { client_id: 'support-bot', client_secret: 'support-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  { client_id: 'report-bot', client_secret: 'report-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
];
if (publicClient) {
  clients.push({
    client_id: publicClient.clientId,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [publicClient.redirectUri],
  });
}

clients.push(...extraClients);

/** Verifies a token this issuer signed (with a key it still publishes); its payload, or an invalid_grant refusal. */
async function verifyOwn(token, what) {
  const jwks = createLocalJWKSet({ keys: keys.map(({ d: _d, ...pub }) => pub) });
  try {
    return (await jwtVerify(token, jwks, { issuer })).payload;
  } catch (err) {
    throw new errors.InvalidGrant(`${what} is not a valid token of this issuer (${err.code ?? err.message})`);
  }
}

/**
 * RFC 8693 token exchange, as a grant type registered with oidc-provider (the client is already
 * authenticated by it): the subject's `sub`, the actor's client in `act`, the requested resource
 * or audience (one this issuer serves) as `aud`, the requested scopes it offers.
 */
async function tokenExchangeGrant(ctx) {
  const p = ctx.oidc.params;
  if (p.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest('subject_token_type must be an access token');
  const subject = await verifyOwn(p.subject_token, 'subject_token');
  let act;
  if (p.actor_token !== undefined) {
    if (p.actor_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest('actor_token_type must be an access token');
    const actor = await verifyOwn(p.actor_token, 'actor_token');
    act = { sub: actor.client_id ?? actor.sub };
  }
  const resource = p.resource ?? p.audience;
  if (!audiences.includes(resource)) throw new errors.InvalidTarget();
  const offered = scope.split(' ');
  const granted = (p.scope ?? '').split(' ').filter((s) => offered.includes(s));
  const signing = keys[0];
  const token = await new SignJWT({ client_id: ctx.oidc.client.clientId, ...(granted.length ? { scope: granted.join(' ') } : {}), ...(act ? { act } : {}) })
    .setProtectedHeader({ alg: 'ES256', kid: signing.kid, typ: 'at+jwt' })
    .setIssuer(issuer)
    .setSubject(subject.sub)
    .setAudience(resource)
    .setIssuedAt()
    .setExpirationTime(`${exchangeTtl}s`)
    .setJti(randomUUID())
    .sign(await importJWK(signing, 'ES256'));
  exchanges++;
  ctx.body = {
    access_token: token,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: exchangeTtl,
    ...(granted.length ? { scope: granted.join(' ') } : {}),
  };
}

/** The client certificate of this request, as PEM, for tls_client_auth. */
function clientCertificate(ctx) {
  const peer = ctx.socket.getPeerCertificate?.();
  return peer?.raw ? new X509Certificate(peer.raw).toString() : undefined;
}

/**
 * oidc-provider reads its keys once, when built: a rotation builds a new provider with the new
 * key set. Every client is static and every token is a JWT, so nothing a test relies on is lost.
 */
function build() {
  const signing = keys[0].kid;
  const p = new Provider(issuer, {
    jwks: { keys },
    cookies: { keys: ['identity-test-cookie-key'] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    ...(tls ? { clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth'] } : {}),
    clients,
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audiences[0],
        getResourceServerInfo: (_ctx, resource) => {
          if (!audiences.includes(resource)) throw new errors.InvalidTarget();
          return { audience: resource, scope, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256', kid: signing } } };
        },
      },
      ...(tls
        ? {
            mTLS: {
              enabled: true,
              tlsClientAuth: true,
              getCertificate: clientCertificate,
              certificateAuthorized: (ctx) => ctx.socket.authorized === true,
              certificateSubjectMatches: (ctx, property, expected) =>
                property === 'tls_client_auth_subject_dn' && ctx.socket.getPeerCertificate().subject?.CN === expected.replace(/^CN=/, ''),
            },
          }
        : {}),
    },
    // support-bot acts for a user, as a token exchange (RFC 8693) would say it.
    extraTokenClaims: (_ctx, token) => (token.clientId === 'support-bot' ? { act: { sub: 'alice' }, tenant: 'acme' } : undefined),
  });
  if (tokenExchange)
    p.registerGrantType(
      TOKEN_EXCHANGE,
      tokenExchangeGrant,
      ['audience', 'resource', 'scope', 'requested_token_type', 'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type'],
      ['audience', 'resource'],
    );
  return { provider: p, handle: p.callback() };
}
let { provider, handle } = build();

/**
 * The login and consent pages in one step, for the user the browser names: signs them in and
 * grants the client the scope it asked for at the resource it asked for.
 */
async function interaction(req, res) {
  const account = new URL(req.url, issuer).searchParams.get('account');
  if (!account) {
    res.writeHead(400).end('account required');
    return;
  }
  const { params } = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: account, clientId: params.client_id });
  const requested = params.scope ?? '';
  if (params.resource) grant.addResourceScope(params.resource, requested);
  const oidcScope = requested.split(' ').filter((s) => s === 'openid' || s === 'offline_access');
  if (oidcScope.length) grant.addOIDCScope(oidcScope.join(' '));
  await provider.interactionFinished(req, res, { login: { accountId: account }, consent: { grantId: await grant.save() } });
}

server.on('request', (req, res) => {
  if (req.method === 'POST' && req.url === '/token') tokenRequests++;
  if (publicClient && req.method === 'GET' && req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => res.writeHead(500).end(String(err)));
    return;
  }
  handle(req, res);
});

createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line === 'count') {
    process.stdout.write(`${JSON.stringify({ tokenRequests, exchanges })}\n`);
    return;
  }
  if (line === 'rotate') keys = [await signingKey(`issuer-key-${Number(keys[0].kid.split('-').at(-1)) + 1}`), ...keys];
  else if (line === 'retire') keys = [keys[0]];
  else return;
  ({ provider, handle } = build());
  process.stdout.write(`${JSON.stringify({ signing: keys[0].kid, keys: keys.map((k) => k.kid) })}\n`);
});

process.stdout.write(`${JSON.stringify({ issuer })}\n`);

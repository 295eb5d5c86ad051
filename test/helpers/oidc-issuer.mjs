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
 * }
 *
 * stdin, one command a line, each answered on stdout with `{"signing": kid, "keys": [kids]}`:
 *   rotate  sign new tokens with a new key; the keys before it stay in the JWKS (an overlap)
 *   retire  drop every key but the one signing from the JWKS
 */
import http from 'node:http';
import { createInterface } from 'node:readline';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

const { audiences, scope = 'tickets:read tickets:write', publicClient } = JSON.parse(process.argv[2] ?? '{"audiences": []}');

/** A private signing key as a JWK; oidc-provider publishes its public half at /jwks. */
async function signingKey(kid) {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
}

/** The published keys, the one signing first. */
let keys = [await signingKey('issuer-key-1')];

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

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
          return { audience: resource, scope, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256', kid: signing } } };
        },
      },
    },
    // support-bot acts for a user, as a token exchange (RFC 8693) would say it.
    extraTokenClaims: (_ctx, token) => (token.clientId === 'support-bot' ? { act: { sub: 'alice' }, tenant: 'acme' } : undefined),
  });
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
  if (publicClient && req.method === 'GET' && req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => res.writeHead(500).end(String(err)));
    return;
  }
  handle(req, res);
});

createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line === 'rotate') keys = [await signingKey(`issuer-key-${Number(keys[0].kid.split('-').at(-1)) + 1}`), ...keys];
  else if (line === 'retire') keys = [keys[0]];
  else return;
  ({ provider, handle } = build());
  process.stdout.write(`${JSON.stringify({ signing: keys[0].kid, keys: keys.map((k) => k.kid) })}\n`);
});

process.stdout.write(`${JSON.stringify({ issuer })}\n`);

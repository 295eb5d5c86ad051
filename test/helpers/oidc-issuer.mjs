/**
 * A real OAuth 2.0 authorization server for the identity tests: oidc-provider on 127.0.0.1:0,
 * issuing JWT access tokens (RFC 9068) by client credentials for one resource (RFC 8707). It
 * runs in its own Node process (oidc-provider ships only ES modules, which Jest cannot load),
 * prints `{"issuer": ...}` as its first line, and stops when killed (the tests' "issuer down").
 *
 * argv[2]: JSON {audiences: [resource indicators it issues tokens for], scope?: the scopes those
 * resources offer, space-separated (default "tickets:read tickets:write")}.
 */
import http from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

const { audiences, scope = 'tickets:read tickets:write' } = JSON.parse(process.argv[2] ?? '{"audiences": []}');
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'issuer-key-1', alg: 'ES256', use: 'sig' };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  cookies: { keys: ['identity-test-cookie-key'] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  clients: [
    { client_id: 'support-bot', client_secret: 'support-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    { client_id: 'report-bot', client_secret: 'report-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  ],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audiences[0],
      getResourceServerInfo: (_ctx, resource) => {
        if (!audiences.includes(resource)) throw new errors.InvalidTarget();
        return { audience: resource, scope, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
  // support-bot acts for a user, as a token exchange (RFC 8693) would say it.
  extraTokenClaims: (_ctx, token) => (token.clientId === 'support-bot' ? { act: { sub: 'alice' }, tenant: 'acme' } : undefined),
});
server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);

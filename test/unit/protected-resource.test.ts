/** MCP routes as OAuth protected resources (G21): the metadata documents, the challenge, the config. */
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { bearerChallenge, InsufficientScope, TokenRequired } from '../../src/identity/challenge';
import { protectedResources } from '../../src/identity/protected-resource';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-prm-'));
mkdirSync(path.join(dir, 'policies'));
const file = path.join(dir, 'portcullis.yaml');

function config(jwtExtra: string) {
  return parseConfig(
    `
listen: 127.0.0.1:8080
policy: { path: ./policies }
audit: { path: ./audit }
identity:
  jwt:
    issuer: https://idp.example.com
    audience: https://gateway.example.com/
${jwtExtra}
routes:
  - { name: api, prefix: /api/, upstream: "http://127.0.0.1:9/" }
  - { name: tools, prefix: /mcp/tools/, kind: mcp, upstream: "http://127.0.0.1:9/mcp" }
`,
    file,
    { env: {} },
  );
}

test("G21 G23: a route's own required_scopes are its metadata's scopes_supported; an MCP route that takes no tokens is no protected resource", () => {
  const c = parseConfig(
    `
listen: 127.0.0.1:8080
policy: { path: ./policies }
audit: { path: ./audit }
identity:
  jwt: { issuer: https://idp.example.com, audience: https://gateway.example.com/, required_scopes: [mcp:all] }
routes:
  - { name: tools, prefix: /tools/, kind: mcp, upstream: "http://127.0.0.1:9/mcp", identity: { required_scopes: [mcp:tools] } }
  - { name: keyed, prefix: /keyed/, kind: mcp, upstream: "http://127.0.0.1:9/mcp", identity: { methods: [api_key] } }
  - { name: plain, prefix: /plain/, kind: mcp, upstream: "http://127.0.0.1:9/mcp" }
`,
    file,
    { env: {} },
  );
  const prs = protectedResources(c.identity.jwt!, c.routes, 'http://127.0.0.1:8080');
  expect(JSON.parse(prs.documentAt('/.well-known/oauth-protected-resource/tools')!).scopes_supported).toEqual(['mcp:tools']);
  expect(JSON.parse(prs.documentAt('/.well-known/oauth-protected-resource/plain')!).scopes_supported).toEqual(['mcp:all']);
  expect(prs.forRoute('keyed')).toBeNull();
  expect(prs.documentAt('/.well-known/oauth-protected-resource/keyed')).toBeNull();
  expect(c.routes.map((r) => r.identity)).toEqual([
    { methods: ['api_key', 'jwt'], required: false, requiredScopes: ['mcp:tools'] },
    { methods: ['api_key'], required: false, requiredScopes: ['mcp:all'] },
    { methods: ['api_key', 'jwt'], required: false, requiredScopes: ['mcp:all'] },
  ]);
});

test("G21: an MCP route's resource is the configured base plus its prefix; its metadata is at the well-known path, with or without the slash", () => {
  const c = config('    resource: https://gw.example.com/\n    required: true\n    required_scopes: [mcp:tools]');
  expect(c.identity.jwt).toMatchObject({ resource: 'https://gw.example.com', required: true });
  const prs = protectedResources(c.identity.jwt!, c.routes, 'http://127.0.0.1:8080');
  expect(prs.forRoute('api')).toBeNull();
  const pr = prs.forRoute('tools')!;
  expect(pr.resource).toBe('https://gw.example.com/mcp/tools/');
  expect(pr.metadataUrl).toBe('https://gw.example.com/.well-known/oauth-protected-resource/mcp/tools');
  expect(JSON.parse(prs.documentAt('/.well-known/oauth-protected-resource/mcp/tools')!)).toEqual({
    resource: 'https://gw.example.com/mcp/tools/',
    authorization_servers: ['https://idp.example.com'],
    scopes_supported: ['mcp:tools'],
    bearer_methods_supported: ['header'],
    resource_name: 'Portcullis MCP route tools',
  });
  expect(prs.documentAt('/.well-known/oauth-protected-resource/mcp/tools/')).toBe(prs.documentAt('/.well-known/oauth-protected-resource/mcp/tools'));
  expect(prs.documentAt('/.well-known/oauth-protected-resource/api')).toBeNull();
  expect(prs.documentAt('/.well-known/oauth-protected-resource/mcp')).toBeNull();
});

test("G21: without identity.jwt.resource the listener's URL is the base; without required_scopes there is no scopes_supported; required defaults to false", () => {
  const c = config('');
  expect(c.identity.jwt).toMatchObject({ resource: null, required: false });
  const prs = protectedResources(c.identity.jwt!, c.routes, 'http://127.0.0.1:8080');
  expect(prs.forRoute('tools')!.resource).toBe('http://127.0.0.1:8080/mcp/tools/');
  expect(JSON.parse(prs.forRoute('tools')!.document)).not.toHaveProperty('scopes_supported');
});

test('identity.jwt.resource must be an http(s) origin, with no path', () => {
  expect(() => config('    resource: https://gw.example.com/base/')).toThrow(/identity\.jwt\.resource/);
  expect(() => config('    resource: gw.example.com')).toThrow(/identity\.jwt\.resource/);
  expect(() => config('    resource: https://gw.example.com:8443')).not.toThrow();
});

test('G21: the challenges name the metadata URL; a missing token names the scopes needed, and no error', () => {
  const prm = 'https://gw.example.com/.well-known/oauth-protected-resource/mcp';
  expect(bearerChallenge(new TokenRequired([]), prm)).toBe(`Bearer realm="portcullis", resource_metadata="${prm}"`);
  expect(bearerChallenge(new TokenRequired(['a', 'b']), prm)).toBe(`Bearer realm="portcullis", resource_metadata="${prm}", scope="a b"`);
  expect(bearerChallenge(new TokenRequired([]))).toBe('Bearer realm="portcullis"');
  expect(bearerChallenge(new InsufficientScope(['a']), prm)).toMatch(
    new RegExp(`^Bearer realm="portcullis", resource_metadata="${prm}", error="insufficient_scope", scope="a"`),
  );
});

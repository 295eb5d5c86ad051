import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt } from 'jose';
import { startTestGateway, type TestGateway } from '../helpers/harness';
import { freePort, startTicketsServer, type TicketsServer } from '../helpers/mcp';
import { clientCredentialsToken, type Issuer, startIssuer } from '../helpers/oidc';

const UPSTREAM_TOKEN = 'upstream-credential-0001';
const SCOPE = 'mcp:tools';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["support-bot uses the tools"]} if {
	input.agent.method == "jwt"
	input.agent.id == "support-bot"
	"${SCOPE}" in input.agent.scopes
}
`;

let issuer: Issuer;
let upstream: TicketsServer;
/** The Authorization headers the upstream received, in order. */
let seen: (string | undefined)[];
let gw: TestGateway;
let base: string;

function initialize(authorization?: string): Promise<Response> {
  return fetch(`${base}/mcp/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(authorization ? { authorization } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  });
}

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  issuer = await startIssuer({ audiences: [`${base}/mcp/`, `${base}/other/`], scope: `${SCOPE} mcp:other` });
  upstream = await startTicketsServer();
  seen = upstream.authorizations;
  gw = await startTestGateway({
    yaml: `
listen: 127.0.0.1:${port}
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  tickets: { type: bearer, env: MCPAUTH_UPSTREAM_TOKEN }
identity:
  jwt:
    issuer: ${issuer.issuer}
    audience: https://gateway.test/
    required: true
    required_scopes: [${SCOPE}]
routes:
  - name: tools
    prefix: /mcp/
    kind: mcp
    upstream: ${upstream.url}
    credential: tickets
  - name: other
    prefix: /other/
    kind: mcp
    upstream: ${upstream.url}
`,
    policies: { 'p.rego': POLICY },
    env: { MCPAUTH_UPSTREAM_TOKEN: UPSTREAM_TOKEN },
  });
}, 30_000);

afterAll(async () => {
  await gw?.close();
  issuer?.child.kill();
  await upstream?.close();
});

test('G21: each MCP route serves its Protected Resource Metadata (RFC 9728) without a credential, unaudited', async () => {
  const before = gw.audit().length;
  const res = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(await res.json()).toEqual({
    resource: `${base}/mcp/`,
    authorization_servers: [issuer.issuer],
    scopes_supported: [SCOPE],
    bearer_methods_supported: ['header'],
    resource_name: 'Portcullis MCP route tools',
  });
  const other = (await (await fetch(`${base}/.well-known/oauth-protected-resource/other`)).json()) as { resource: string };
  expect(other.resource).toBe(`${base}/other/`);
  expect(gw.audit().length).toBe(before);
  // Not a metadata fetch: another method, or a path naming no MCP route, goes through the pipeline.
  const post = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`, { method: 'POST' });
  expect(post.status).not.toBe(200);
  expect((await fetch(`${base}/.well-known/oauth-protected-resource/nope`)).status).not.toBe(200);
});

test('G21: a call without a token is refused 401 with a resource_metadata challenge, audited PC_TOKEN_REQUIRED, not forwarded', async () => {
  const upstreamCalls = seen.length;
  const res = await initialize();
  expect(res.status).toBe(401);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_TOKEN_REQUIRED');
  expect(res.headers.get('www-authenticate')).toBe(
    `Bearer realm="portcullis", resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="${SCOPE}"`,
  );
  const record = await gw.waitForAudit((r) => r.decision_id === res.headers.get('x-portcullis-decision-id'));
  expect(record).toMatchObject({ decision: 'deny', code: 'PC_TOKEN_REQUIRED', agent: null, route: 'tools' });
  expect(seen.length).toBe(upstreamCalls);
});

test('G21 G1: an unmodified SDK client discovers the issuer from the 401, gets a token for the route, and calls a tool; the upstream never sees that token', async () => {
  const upstreamCalls = seen.length;
  // The client knows only its credentials (and, since the SDK's client-credentials grant reads
  // the scope from the client's metadata rather than the challenge, the scope it asks for): the
  // issuer and the resource come from the gateway's 401 and its metadata.
  const provider = new ClientCredentialsProvider({ clientId: 'support-bot', clientSecret: 'support-secret', scope: SCOPE, expectedIssuer: issuer.issuer });
  const client = new Client({ name: 'unmodified', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/`), { authProvider: provider }));
  const result = await client.callTool({ name: 'lookup', arguments: {} });
  expect(result.content).toEqual([{ type: 'text', text: 'ticket 42: open' }]);
  await client.close();

  // The token the client got is for this route's resource (RFC 8707), with the scope the metadata named.
  const agentToken = provider.tokens()!.access_token;
  const claims = decodeJwt(agentToken);
  expect(claims.aud).toBe(`${base}/mcp/`);
  expect(claims.scope).toBe(SCOPE);
  // Identity, policy, credential, audit: the upstream saw only the route's own credential.
  const upstreamAuth = seen.slice(upstreamCalls);
  expect(upstreamAuth.length).toBeGreaterThan(0);
  for (const a of upstreamAuth) expect(a).toBe(`Bearer ${UPSTREAM_TOKEN}`);
  const call = await gw.waitForAudit((r) => r.type === 'decision' && r.decision === 'allow' && r.mcp?.tool === 'lookup');
  expect(call).toMatchObject({ agent: 'support-bot', route: 'tools', credential: 'tickets' });
  expect(gw.auditText()).not.toContain(agentToken.split('.')[2]);
});

test('G21: a token minted for another route is refused PC_TOKEN_AUDIENCE on this one (RFC 8707), and works on its own', async () => {
  const upstreamCalls = seen.length;
  const forOther = await token(`${base}/other/`);
  const res = await initialize(`Bearer ${forOther}`);
  expect(res.status).toBe(401);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_TOKEN_AUDIENCE');
  expect(res.headers.get('www-authenticate')).toMatch(
    new RegExp(`^Bearer realm="portcullis", resource_metadata="${base}/\\.well-known/oauth-protected-resource/mcp", error="invalid_token"`),
  );
  await gw.waitForAudit((r) => r.decision_id === res.headers.get('x-portcullis-decision-id') && r.code === 'PC_TOKEN_AUDIENCE');
  expect(seen.length).toBe(upstreamCalls);

  const own = await fetch(`${base}/other/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${forOther}` },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  });
  expect(own.status).toBe(200);
  // The other route has no credential: the agent's token is still not passed through.
  expect(seen.at(-1)).toBeUndefined();
});

test('G21: a token for the route lacking the required scope is refused 403 insufficient_scope, pointing to the metadata', async () => {
  const res = await initialize(`Bearer ${await token(`${base}/mcp/`, 'mcp:other')}`);
  expect(res.status).toBe(403);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_INSUFFICIENT_SCOPE');
  expect(res.headers.get('www-authenticate')).toMatch(
    new RegExp(
      `^Bearer realm="portcullis", resource_metadata="${base}/\\.well-known/oauth-protected-resource/mcp", error="insufficient_scope", scope="${SCOPE}"`,
    ),
  );
  await gw.waitForAudit((r) => r.decision_id === res.headers.get('x-portcullis-decision-id') && r.code === 'PC_INSUFFICIENT_SCOPE');
});

/** A token from the issuer by client credentials, for a resource and scope. */
function token(resource: string, scope = SCOPE): Promise<string> {
  return clientCredentialsToken(issuer, { resource, scope });
}

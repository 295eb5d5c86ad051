/**
 * An agent acting for a user (G21): an unmodified MCP SDK client gets its token by the
 * authorization code grant with PKCE, from a real oidc-provider, through the discovery the
 * gateway's 401 starts. The test plays the user's browser: it follows the authorization URL the
 * SDK hands to `redirectToAuthorization`, signs in as a user at the issuer's interaction page
 * (test/helpers/oidc-issuer.mjs), and hands the code from the redirect back to the SDK.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt } from 'jose';
import { startTestGateway, type TestGateway } from '../helpers/harness';
import { freePort, startTicketsServer, type TicketsServer } from '../helpers/mcp';
import { type Issuer, startIssuer } from '../helpers/oidc';

const UPSTREAM_TOKEN = 'upstream-credential-0002';
const SCOPE = 'mcp:tools';
const CLIENT_ID = 'support-app';
/** Nothing listens here: the browser stops at the redirect and hands its code to the app. */
const REDIRECT_URI = 'http://127.0.0.1/callback';

// The agent is the OAuth client (agent_claim: client_id); the user it acts for is the token's
// subject (on_behalf_of_claim: sub). Any user may let the app connect; only alice's tools are its.
const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["support-app connects"]} if {
	input.agent.method == "jwt"
	input.agent.id == "${CLIENT_ID}"
	input.mcp.method != "tools/call"
}

decision := {"allow": true, "reasons": ["support-app calls tools for alice"]} if {
	input.agent.method == "jwt"
	input.agent.id == "${CLIENT_ID}"
	input.agent.on_behalf_of == "alice"
	input.mcp.method == "tools/call"
}
`;

let issuer: Issuer;
let upstream: TicketsServer;
let gw: TestGateway;
let base: string;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  issuer = await startIssuer({ audiences: [`${base}/mcp/`], scope: SCOPE, publicClient: { clientId: CLIENT_ID, redirectUri: REDIRECT_URI } });
  upstream = await startTicketsServer();
  gw = await startTestGateway({
    yaml: `
listen: 127.0.0.1:${port}
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  tickets: { type: bearer, env: MCPCODE_UPSTREAM_TOKEN }
identity:
  jwt:
    issuer: ${issuer.issuer}
    audience: https://gateway.test/
    agent_claim: client_id
    on_behalf_of_claim: sub
    required: true
    required_scopes: [${SCOPE}]
routes:
  - name: tools
    prefix: /mcp/
    kind: mcp
    upstream: ${upstream.url}
    credential: tickets
`,
    policies: { 'p.rego': POLICY },
    env: { MCPCODE_UPSTREAM_TOKEN: UPSTREAM_TOKEN },
  });
}, 30_000);

afterAll(async () => {
  await gw?.close();
  issuer?.child.kill();
  await upstream?.close();
});

/**
 * The user's browser: follows the authorization URL, keeping the issuer's cookies, signs in as
 * `user` at the interaction page, and stops at the redirect to the app. Resolves with that URL.
 */
async function signIn(authorizationUrl: URL, user: string): Promise<URL> {
  const cookies = new Map<string, string>();
  let url = authorizationUrl;
  for (let hop = 0; hop < 10; hop++) {
    if (url.href.startsWith(REDIRECT_URI)) return url;
    if (url.origin !== issuer.issuer) throw new Error(`the browser was sent to ${url}`);
    if (url.pathname.startsWith('/interaction/')) url.searchParams.set('account', user);
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';')[0];
      const name = pair.slice(0, pair.indexOf('='));
      const value = pair.slice(pair.indexOf('=') + 1);
      if (value) cookies.set(name, value);
      else cookies.delete(name);
    }
    const location = res.headers.get('location');
    const text = await res.text();
    if (res.status < 300 || res.status >= 400 || !location) throw new Error(`the issuer answered ${res.status} at ${url.pathname}: ${text}`);
    url = new URL(location, url);
  }
  throw new Error('too many redirects');
}

/**
 * The app's side of the SDK's OAuth flow: a pre-registered public client whose "browser" is
 * signIn, for one user. Keeps what the SDK asks it to keep, and what the browser saw.
 */
class SupportApp implements OAuthClientProvider {
  private saved: OAuthTokens | undefined;
  private verifier = '';
  private readonly expectedState = randomUUID();
  /** The authorization URL the SDK sent the browser to. */
  authorizationUrl: URL | undefined;
  /** The code the redirect carried back. */
  code: string | undefined;

  constructor(private readonly user: string) {}

  get redirectUrl(): string {
    return REDIRECT_URI;
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'Support app',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state(): string {
    return this.expectedState;
  }
  clientInformation(): OAuthClientInformationMixed {
    return { client_id: CLIENT_ID };
  }
  tokens(): OAuthTokens | undefined {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
  }
  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
  }
  codeVerifier(): string {
    return this.verifier;
  }
  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    this.authorizationUrl = authorizationUrl;
    const back = await signIn(authorizationUrl, this.user);
    if (back.searchParams.get('state') !== this.expectedState) throw new Error(`state mismatch in ${back}`);
    this.code = back.searchParams.get('code') ?? undefined;
  }
}

/** Connects the SDK client as the app acting for `user`: the 401, the browser, the code, the reconnect. */
async function connectAs(user: string): Promise<{ app: SupportApp; client: Client }> {
  const app = new SupportApp(user);
  const first = new StreamableHTTPClientTransport(new URL(`${base}/mcp/`), { authProvider: app });
  // The first attempt has no token: the gateway's 401 starts discovery, and the SDK sends the
  // browser to the authorization server and stops there, as it would in a real app.
  await expect(new Client({ name: 'support-app', version: '1.0.0' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
  expect(app.code).toEqual(expect.any(String));
  await first.finishAuth(app.code!);
  await first.close();
  const client = new Client({ name: 'support-app', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/`), { authProvider: app }));
  return { app, client };
}

test('G21 G1: an unmodified SDK client gets a token by authorization code with PKCE for its user, through the discovery the 401 starts, and calls a tool; the upstream never sees that token', async () => {
  const upstreamCalls = upstream.authorizations.length;
  const runs = upstream.toolRuns();
  const records = gw.audit().length;
  const { app, client } = await connectAs('alice');
  expect(gw.audit().slice(records)).toContainEqual(expect.objectContaining({ decision: 'deny', code: 'PC_TOKEN_REQUIRED', agent: null, route: 'tools' }));

  // The browser went to the issuer the gateway's metadata named, for the route's resource and
  // scope, with an S256 challenge of the verifier the SDK later redeemed the code with.
  const asked = app.authorizationUrl!;
  expect(`${asked.origin}${asked.pathname}`).toBe(`${issuer.issuer}/auth`);
  expect(Object.fromEntries(asked.searchParams)).toMatchObject({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    resource: `${base}/mcp/`,
    scope: SCOPE,
    code_challenge_method: 'S256',
  });
  expect(asked.searchParams.get('code_challenge')).toBe(createHash('sha256').update(app.codeVerifier()).digest('base64url'));

  const result = await client.callTool({ name: 'lookup', arguments: {} });
  expect(result.content).toEqual([{ type: 'text', text: 'ticket 42: open' }]);
  expect(upstream.toolRuns()).toBe(runs + 1);
  await client.close();

  // The token is the user's, given to the app, for this route (RFC 8707).
  const agentToken = app.tokens()!.access_token;
  expect(decodeJwt(agentToken)).toMatchObject({ iss: issuer.issuer, sub: 'alice', client_id: CLIENT_ID, aud: `${base}/mcp/`, scope: SCOPE });
  // The upstream saw only the route's own credential; the audit trail names the app and its user.
  const upstreamAuth = upstream.authorizations.slice(upstreamCalls);
  expect(upstreamAuth.length).toBeGreaterThan(0);
  for (const a of upstreamAuth) expect(a).toBe(`Bearer ${UPSTREAM_TOKEN}`);
  const call = await gw.waitForAudit((r) => r.type === 'decision' && r.mcp?.tool === 'lookup' && r.on_behalf_of === 'alice');
  expect(call).toMatchObject({
    decision: 'allow',
    agent: CLIENT_ID,
    on_behalf_of: 'alice',
    reasons: ['support-app calls tools for alice'],
    credential: 'tickets',
  });
  expect(gw.auditText()).not.toContain(agentToken.split('.')[2]);
});

test('G21: the policy decides on the user the app acts for: for bob, the same app connects but its tool call is denied in the protocol', async () => {
  const { app, client } = await connectAs('bob');
  expect(decodeJwt(app.tokens()!.access_token)).toMatchObject({ sub: 'bob', client_id: CLIENT_ID });
  const runs = upstream.toolRuns();

  const result = await client.callTool({ name: 'lookup', arguments: {} });
  await client.close();
  expect(result.isError).toBe(true);
  expect(result.content).toEqual([{ type: 'text', text: expect.stringMatching(/^Portcullis denied this tool call: no rule allows this call\. Decision /) }]);
  const call = await gw.waitForAudit((r) => r.type === 'decision' && r.mcp?.tool === 'lookup' && r.on_behalf_of === 'bob');
  expect(call).toMatchObject({ decision: 'deny', agent: CLIENT_ID, code: 'PC_POLICY_DENIED', credential: null });
  expect(upstream.toolRuns()).toBe(runs);
});

test('the SIEM exports carry whom the app acted for (ECS portcullis.on_behalf_of, OCSF unmapped.portcullis.on_behalf_of)', () => {
  const cli = path.resolve(__dirname, '../../dist/src/cli/main.js');
  const exported = (format: string) =>
    execFileSync(process.execPath, [cli, 'audit', 'export', gw.auditDir, '--format', format, '--agent', CLIENT_ID], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  const users = (docs: Record<string, any>[], at: (d: Record<string, any>) => any) =>
    docs.filter((d) => at(d)?.mcp?.tool === 'lookup').map((d) => at(d).on_behalf_of);
  expect(users(exported('ecs'), (d) => d.portcullis).sort()).toEqual(['alice', 'bob']);
  expect(users(exported('ocsf'), (d) => d.unmapped.portcullis).sort()).toEqual(['alice', 'bob']);
});

/**
 * The canary across every credential type (G2, G24, G25): one gateway with a route per type, in
 * front of an upstream that echoes everything it was sent (headers in its body and in its own
 * headers, the body back). Nothing the gateway holds or mints — static secrets, the OAuth client
 * secret, minted and exchanged tokens, the AWS secret key, session token and each call's
 * signature — may appear in what the agent reads, in the gateway's log, in the audit trail, or in
 * a refusal (a token endpoint refusing the gateway's client answers 503, its body only logged).
 */
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { clientCredentialsToken, type Issuer, startIssuer } from '../helpers/oidc';

const GATEWAY = 'https://gateway.test/';
const CRM = 'https://crm.test/';
const AGENT_KEY = 'canary-agent-key-0001';
const SECRETS = {
  BEARER: 'canary-bearer-8d1f6a2c',
  HEADER: 'canary-header-3b7e9f01',
  BASIC: 'canary-basic-pw-55c2e7',
  GW_CLIENT: 'canary-gw-client-secret-a41b',
  AWS_SECRET: 'canarySecretKey/9f3+Qz7Lm2Xc5Vb8Nn1Aa0',
  AWS_SESSION: 'canary-session-token-77e1d0c4b9',
} as const;
const AWS_KEY_ID = 'AKIACANARYKEY0000001';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["identified"]} if input.agent.id
`;

let issuer: Issuer;
let upstream: Upstream;
let gw: TestGateway;
/** Everything the agent read: bodies and header values. */
const agentSaw: string[] = [];

beforeAll(async () => {
  const client = (id: string, secret: string, grants: string[]) => ({
    client_id: id,
    client_secret: secret,
    grant_types: grants,
    redirect_uris: [],
    response_types: [],
  });
  issuer = await startIssuer({
    audiences: [GATEWAY, CRM],
    tokenExchange: true,
    clients: [
      client('portcullis-gw', SECRETS.GW_CLIENT, ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']),
      client('agent-one', 'agent-one-secret', ['client_credentials']),
    ],
  });
  // Echoes the request: its headers in the body and in response headers, then the body itself.
  upstream = await startUpstream((req, res, body) => {
    const text = JSON.stringify({ headers: req.headers, body: body.toString('utf8'), b64: Buffer.from(JSON.stringify(req.headers)).toString('base64') });
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-echo-authorization': req.headers.authorization ?? '',
      'x-echo-token': req.headers['x-amz-security-token'] ?? '',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
  const up = upstream.url;
  gw = await startTestGateway({
    yaml: `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
agents:
  - id: key-bot
    key_sha256: "${keyHash(AGENT_KEY)}"
identity:
  jwt: { issuer: ${issuer.issuer}, audience: ${GATEWAY}, agent_claim: client_id }
credentials:
  bearer: { type: bearer, env: C_BEARER }
  header: { type: header, header: X-Api-Key, env: C_HEADER }
  basic: { type: basic, username: svc, password_env: C_BASIC }
  oauth: { type: oauth2_client_credentials, token_url: ${issuer.issuer}/token, client_id: portcullis-gw, client_secret_env: C_GW, resource: ${CRM} }
  exchange: { type: oauth2_token_exchange, token_url: ${issuer.issuer}/token, client_id: portcullis-gw, client_secret_env: C_GW, resource: ${CRM} }
  refused: { type: oauth2_client_credentials, token_url: ${issuer.issuer}/token, client_id: portcullis-gw, client_secret_env: C_WRONG, resource: ${CRM} }
  aws: { type: aws_sigv4, service: s3, region: eu-west-1, access_key_id_env: C_AWS_ID, secret_access_key_env: C_AWS_SECRET, session_token_env: C_AWS_SESSION }
routes:
${['bearer', 'header', 'basic', 'oauth', 'exchange', 'refused', 'aws'].map((n) => `  - { name: ${n}, prefix: /${n}/, upstream: "${up}/", credential: ${n} }`).join('\n')}
`,
    policies: { 'p.rego': POLICY },
    env: {
      C_BEARER: SECRETS.BEARER,
      C_HEADER: SECRETS.HEADER,
      C_BASIC: SECRETS.BASIC,
      C_GW: SECRETS.GW_CLIENT,
      C_WRONG: `${SECRETS.GW_CLIENT}-but-wrong`,
      C_AWS_ID: AWS_KEY_ID,
      C_AWS_SECRET: SECRETS.AWS_SECRET,
      C_AWS_SESSION: SECRETS.AWS_SESSION,
    },
  });
}, 30_000);

afterAll(async () => {
  issuer?.child.kill('SIGKILL');
  await gw?.close();
  await upstream?.close();
});

async function call(route: string, bearer: string): Promise<Response> {
  const res = await fetch(`${gw.gateway.url}/${route}/echo?q=1`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify({ note: 'a 1 KB body'.padEnd(1024, '.') }),
  });
  agentSaw.push(await res.text(), JSON.stringify([...res.headers]));
  return res;
}

test('G2 G24 G25: no credential of any type reaches what the agent reads, the log or the trail', async () => {
  const agentToken = await clientCredentialsToken(issuer, { resource: GATEWAY, scope: 'tickets:read', client: 'agent-one', secret: 'agent-one-secret' });
  const attached: string[] = [];
  for (const route of ['bearer', 'header', 'basic', 'oauth', 'exchange', 'aws']) {
    const res = await call(route, route === 'exchange' ? agentToken : AGENT_KEY);
    expect([route, res.status]).toEqual([route, 200]);
    const sent = upstream.received.at(-1)!.headers;
    // What was attached, as the upstream got it: the minted token, the signature, the header value.
    const value = route === 'header' ? String(sent['x-api-key']) : String(sent.authorization);
    expect(value).not.toBe('undefined');
    attached.push(value.replace(/^(Bearer|Basic) /, ''));
    if (route === 'aws') {
      const signature = /Signature=([0-9a-f]{64})/.exec(value)![1];
      attached.push(signature, String(sent['x-amz-security-token']));
    }
    // The echo carried the attached value back: the agent got it masked.
    const echoed = JSON.parse(agentSaw.at(-2)!).headers as Record<string, string>;
    expect(echoed[route === 'header' ? 'x-api-key' : 'authorization']).toMatch(/\*{8,}/);
  }
  // The caller's own token is not forwarded either (no token passthrough).
  expect(JSON.stringify(upstream.received.map((r) => r.headers))).not.toContain(agentToken);

  const refused = await call('refused', AGENT_KEY);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('x-portcullis-error')).toBe('PC_CREDENTIAL_UNAVAILABLE');

  const everything = [...Object.values(SECRETS), ...attached];
  for (const [where, text] of [
    ['what the agent read', agentSaw.join('\n')],
    ['the log', gw.logs()],
    ['the audit trail', gw.auditText()],
  ] as const)
    for (const secret of everything) expect([where, text.includes(secret)]).toEqual([where, false]);
});

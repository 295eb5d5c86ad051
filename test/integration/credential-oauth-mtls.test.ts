/**
 * `auth_method: tls_client_auth` (RFC 8705) against a real authorization server over HTTPS
 * (oidc-provider with mTLS client authentication, test/helpers/oidc-issuer.mjs): the gateway
 * presents its client certificate on the TLS connection to the token endpoint, trusting the
 * endpoint's certificate through `ca_file`. Certificates are made here with the openssl CLI.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { type Issuer, startIssuer, tokenCounts } from '../helpers/oidc';

const CRM = 'https://crm.test/';
const AGENT_KEY = 'mtls-oauth-agent-key-0001';
const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-oauth-mtls-'));
const at = (name: string) => path.join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA, then certificates it signs: `<name>.pem`, `<name>.key`. */
function makeCa(name: string): void {
  openssl(
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ); // biome-ignore format: argument list
}

function makeCert(name: string, ca: string, cn: string, ext: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(at(`${name}.ext`), ext);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', `0x${Date.now().toString(16)}${name.length}`, '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`); // biome-ignore format: argument list
}

let issuer: Issuer;
let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  makeCa('ca');
  makeCert('server', 'ca', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  makeCert('gateway', 'ca', 'portcullis-mtls', 'extendedKeyUsage=clientAuth\n');
  makeCert('intruder', 'ca', 'someone-else', 'extendedKeyUsage=clientAuth\n');
  const read = (f: string) => readFileSync(at(f), 'utf8');
  issuer = await startIssuer({
    audiences: [CRM],
    tls: { cert: read('server.pem'), key: read('server.key'), ca: read('ca.pem') },
    clients: [
      {
        client_id: 'portcullis-mtls',
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: 'CN=portcullis-mtls',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      },
    ],
  });
  upstream = await startUpstream();
  const credential = (cert: string) => `
    type: oauth2_client_credentials
    token_url: ${issuer.issuer}/token
    client_id: portcullis-mtls
    auth_method: tls_client_auth
    client_cert_file: ${at(`${cert}.pem`)}
    client_key_file: ${at(`${cert}.key`)}
    ca_file: ${at('ca.pem')}
    scope: [tickets:read]
    resource: ${CRM}`;
  gw = await startTestGateway({
    dir,
    policies: { 'p.rego': 'package portcullis\n\ndecision := {"allow": true, "reasons": ["test"]}\n' },
    yaml: `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
agents:
  - id: key-bot
    key_sha256: "${keyHash(AGENT_KEY)}"
credentials:
  crm-mtls:${credential('gateway')}
  crm-intruder:${credential('intruder')}
routes:
  - name: crm
    prefix: /crm/
    upstream: ${upstream.url}/
    credential: crm-mtls
  - name: intruder
    prefix: /intruder/
    upstream: ${upstream.url}/
    credential: crm-intruder
`,
  });
}, 30_000);

afterAll(async () => {
  issuer?.child.kill('SIGKILL');
  await gw?.close();
  await upstream?.close();
});

function call(target: string): Promise<Response> {
  return fetch(`${gw.gateway.url}${target}`, { headers: { authorization: `Bearer ${AGENT_KEY}` } });
}

test('G24: tls_client_auth: the gateway gets its token with its client certificate over TLS to the token endpoint (trusted by ca_file)', async () => {
  const before = (await tokenCounts(issuer)).tokenRequests;
  expect((await call('/crm/x')).status).toBe(200);
  const auth = upstream.received.at(-1)!.headers.authorization!;
  expect(auth).toMatch(/^Bearer /);
  expect(decodeJwt(auth.slice(7))).toMatchObject({ client_id: 'portcullis-mtls', aud: CRM, scope: 'tickets:read' });
  expect((await tokenCounts(issuer)).tokenRequests).toBe(before + 1);
});

test('G24: tls_client_auth with a certificate of another subject is refused by the authorization server: 503 PC_CREDENTIAL_UNAVAILABLE, nothing forwarded', async () => {
  const received = upstream.received.length;
  const res = await call('/intruder/x');
  expect(res.status).toBe(503);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_CREDENTIAL_UNAVAILABLE');
  expect(await res.text()).toMatch(/answered 401/);
  expect(upstream.received.length).toBe(received);
});

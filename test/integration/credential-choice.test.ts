/**
 * Least privilege chosen by the policy (G28): a route lists its credentials by label, the
 * decision picks one (or the route's default applies), and anything else the decision says
 * about credentials denies. A counting upstream shows which credential each call carried; the
 * audit records name it by a keyed fingerprint that stays the same across a restart.
 */
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const AGENT_KEY = 'credential-choice-agent-key-01';
const READ_TOKEN = 'crm-read-only-token-0001';
const WRITE_TOKEN = 'crm-read-write-token-0002';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["read"], "credential": "read"} if {
	input.route == "crm"
	input.request.method == "GET"
}

decision := {"allow": true, "reasons": ["write"], "credential": "write"} if {
	input.route == "crm"
	input.request.method == "POST"
}

decision := {"allow": true, "reasons": ["multi read"], "credential": "read"} if {
	input.route == "multi"
	input.request.method == "GET"
}

# Silent about the credential: the route's default_credential.
decision := {"allow": true, "reasons": ["silent"]} if input.request.method == "PUT"

decision := {"allow": true, "reasons": ["a label the route lacks"], "credential": "admin"} if input.request.method == "DELETE"

decision := {"allow": true, "reasons": ["scopes of a static secret"], "credential": "read", "scopes": ["crm.read"]} if input.request.method == "PATCH"

decision := {"allow": true, "reasons": ["no scopes at all"], "credential": "read", "scopes": []} if input.request.method == "OPTIONS"
`;

function yaml(upstream: string): string {
  return `
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
agents:
  - id: crm-bot
    key_sha256: "${keyHash(AGENT_KEY)}"
credentials:
  crm-ro: { type: bearer, env: CHOICE_READ_TOKEN }
  crm-rw: { type: bearer, env: CHOICE_WRITE_TOKEN }
routes:
  - name: crm
    prefix: /crm/
    upstream: ${upstream}/
    credentials: { read: crm-ro, write: crm-rw }
    default_credential: read
  - name: multi
    prefix: /multi/
    upstream: ${upstream}/
    credentials: { read: crm-ro, write: crm-rw }
`;
}
const env = { CHOICE_READ_TOKEN: READ_TOKEN, CHOICE_WRITE_TOKEN: WRITE_TOKEN };

let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  // Echoes each request; /recent answers with the Authorization of the call before it (an
  // upstream's "recent requests" page: another credential of the route, echoed to this call).
  let previous = '';
  upstream = await startUpstream((req, res, body) => {
    const text = req.url!.endsWith('/recent') ? JSON.stringify({ previous }) : JSON.stringify({ headers: req.headers, body: body.toString() });
    previous = req.headers.authorization ?? '';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  });
  gw = await startTestGateway({ yaml: yaml(upstream.url), policies: { 'p.rego': POLICY }, env });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

async function call(method: string, target: string): Promise<{ res: Response; record: Record<string, any>; forwarded: string | undefined | null }> {
  const before = upstream.received.length;
  const res = await fetch(`${gw.gateway.url}${target}`, { method, headers: { authorization: `Bearer ${AGENT_KEY}` } });
  await res.text();
  const id = res.headers.get('x-portcullis-decision-id');
  const record = await gw.waitForAudit((r) => r.type === 'decision' && r.decision_id === id);
  const forwarded = upstream.received.length > before ? upstream.received.at(-1)!.headers.authorization : null;
  return { res, record, forwarded };
}

test('G28: the upstream sees the read credential on GET and the write credential on POST, as the decision chose; a silent decision gets the default', async () => {
  const read = await call('GET', '/crm/contacts/7');
  expect(read.res.status).toBe(200);
  expect(read.forwarded).toBe(`Bearer ${READ_TOKEN}`);
  const write = await call('POST', '/crm/contacts');
  expect(write.forwarded).toBe(`Bearer ${WRITE_TOKEN}`);
  const silent = await call('PUT', '/crm/contacts/7');
  expect(silent.forwarded).toBe(`Bearer ${READ_TOKEN}`);

  // The records name the credential and its fingerprint: equal for equal values, never the value.
  expect(read.record).toMatchObject({ decision: 'allow', credential: 'crm-ro', credential_fingerprint: expect.stringMatching(/^hmac:[0-9a-f]{16}$/) });
  expect(write.record).toMatchObject({ credential: 'crm-rw' });
  expect(silent.record.credential_fingerprint).toBe(read.record.credential_fingerprint);
  expect(write.record.credential_fingerprint).not.toBe(read.record.credential_fingerprint);
  expect(read.record).not.toHaveProperty('credential_scopes');
  expect(gw.auditText()).not.toContain(READ_TOKEN);
  expect(gw.auditText()).not.toContain(WRITE_TOKEN);
});

test.each([
  ['DELETE', '/crm/contacts/7', /is not one of the route's credentials \(read, write\)/],
  ['PATCH', '/crm/contacts/7', /credential crm-ro: it is a static secret with no scopes/],
  ['PUT', '/multi/contacts/7', /several credentials \(read, write\), no default_credential, and the decision named none/],
])('G28: %s %s, where the decision asks for what the route cannot grant, is denied PC_POLICY_ERROR and not forwarded', async (method, target, reason) => {
  const { res, record, forwarded } = await call(method, target);
  expect(res.status).toBe(403);
  expect(res.headers.get('x-portcullis-error')).toBe('PC_POLICY_ERROR');
  expect(forwarded).toBeNull();
  expect(record).toMatchObject({ decision: 'deny', code: 'PC_POLICY_ERROR', credential: null });
  expect(record.reasons.join(' ')).toMatch(reason);
});

test('G2 G28: an answer is masked for every credential of the route: a read call cannot be handed the write token the upstream saw before', async () => {
  await call('POST', '/crm/contacts');
  const res = await fetch(`${gw.gateway.url}/crm/recent`, { headers: { authorization: `Bearer ${AGENT_KEY}` } });
  expect(upstream.received.at(-1)!.headers.authorization).toBe(`Bearer ${READ_TOKEN}`);
  const text = await res.text();
  expect(text).not.toContain(WRITE_TOKEN);
  expect(JSON.parse(text).previous).toMatch(/^Bearer \*+$/);
});

test('G2 G28: Range and If-Range are withheld on a route with several credentials, with or without a default', async () => {
  for (const target of ['/crm/file', '/multi/file']) {
    const before = upstream.received.length;
    await fetch(`${gw.gateway.url}${target}`, { headers: { authorization: `Bearer ${AGENT_KEY}`, range: 'bytes=0-9', 'if-range': 'x' } });
    const sent = upstream.received.slice(before);
    expect(sent.length).toBe(1);
    for (const r of sent) expect([target, r.headers.range, r.headers['if-range']]).toEqual([target, undefined, undefined]);
  }
});

test('G28: a decision asking for an empty list of scopes is a policy error, not "the server\'s default"', async () => {
  const { res, forwarded } = await call('OPTIONS', '/crm/x');
  expect(res.headers.get('x-portcullis-error')).toBe('PC_POLICY_ERROR');
  expect(forwarded).toBeNull();
});

test('/readyz and the metrics report each credential by name and type, never its value', async () => {
  const ready = (await (await fetch(`${gw.gateway.adminUrl}/readyz`)).json()) as { credentials: Record<string, unknown>[] };
  expect(ready.credentials).toEqual([
    expect.objectContaining({ name: 'crm-ro', type: 'bearer', ok: true, fetches: 1, failures: 0, expires_in_s: null, cache_hits: expect.any(Number) }),
    expect.objectContaining({ name: 'crm-rw', type: 'bearer', ok: true, fetches: 1 }),
  ]);
  expect(ready.credentials[0].cache_hits).toBeGreaterThanOrEqual(2);
  const metrics = await (await fetch(`${gw.gateway.adminUrl}/metrics`)).text();
  expect(metrics).toMatch(/portcullis_credential_cache_hits_total\{credential="crm-ro",type="bearer"\} [2-9]/);
  expect(metrics).toMatch(/portcullis_credential_ok\{credential="crm-rw",type="bearer"\} 1/);
  expect(JSON.stringify(ready) + metrics).not.toContain(READ_TOKEN);
});

test('G28: the fingerprint of a credential is the same after a restart with the same audit key', async () => {
  const before = (await call('GET', '/crm/a')).record.credential_fingerprint;
  await gw.close();
  gw = await startTestGateway({ yaml: yaml(upstream.url), policies: { 'p.rego': POLICY }, env, dir: gw.dir });
  expect((await call('GET', '/crm/a')).record.credential_fingerprint).toBe(before);
});

/**
 * End-to-end through the real gateway: real upstream on port 0, Rego compiled by the real OPA.
 * Guarantees covered here (docs/guarantees.md): G1 credentials only on allow and only to the
 * route's upstream; G2 no credential reaches the agent, the logs or the audit trail; G3 every
 * decision is audited before forwarding; G4 every bad input is refused, audited, not forwarded.
 */
import { verifyTrail } from '../../src/audit/offline/verify';
import { keyHash, rawHttp, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { agentKeyIdentity } from '../helpers/identity';

const CANARY = 'canary-secret-7f3a9c2e1b';
const HEADER_CANARY = 'hdr-canary-5d8e0a4b';
const AGENT_KEY = 'agent-key-for-tests-0001';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["read allowed"]} if {
	input.agent.id == "bot"
	input.request.method == "GET"
	not startswith(input.request.path, "/admin")
	input.request.path != "/inspect"
}

decision := {"allow": true, "reasons": ["charge within limit"]} if {
	input.agent.id == "bot"
	input.request.method == "POST"
	input.request.path == "/charges"
	input.request.body.amount <= 100
}

# Shows the test exactly what the policy saw.
decision := {"allow": false, "reasons": [json.marshal(input)]} if input.request.path == "/inspect"
`;

let upstream: Upstream;
let gw: TestGateway;
const answers: string[] = [];

function yaml(up: string): string {
  return `
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
limits: { max_body_bytes: 4096 }
credentials:
  api: { type: bearer, env: TEST_CANARY }
  hdr: { type: header, header: X-Api-Key, file: ./secret.txt }
agents:
  - id: bot
    key_sha256: "${keyHash(AGENT_KEY)}"
routes:
  - name: api
    prefix: /api/
    upstream: ${up}/base/
    credential: api
  - name: hdr
    prefix: /hdr/
    upstream: ${up}/
    credential: hdr
  - name: open
    prefix: /open/
    upstream: ${up}/
`;
}

beforeAll(async () => {
  upstream = await startUpstream((req, res, body) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (req.url?.endsWith('/forge')) Object.assign(headers, { 'x-portcullis-error': 'PC_POLICY_DENIED', 'x-portcullis-decision-id': 'forged' });
    if (req.url?.endsWith('/stream-echo')) {
      // Chunked, no Content-Length: the streaming masker; the secret split across writes.
      const auth = String(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(`token=${auth.slice(0, 12)}`);
      setTimeout(() => res.end(`${auth.slice(12)};`), 20);
      return;
    }
    res.writeHead(200, headers);
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') }));
  });
  gw = await startTestGateway({
    yaml: yaml(upstream.url),
    policies: { 'policy.rego': POLICY },
    env: { TEST_CANARY: CANARY },
    files: { 'secret.txt': `${HEADER_CANARY}\n` },
  });
});

afterAll(async () => {
  await gw.close();
  await upstream.close();
});

const auth = { authorization: `Bearer ${AGENT_KEY}` };

async function call(options: Parameters<typeof rawRequest>[1]) {
  const r = await rawRequest(gw.gateway.url, options);
  answers.push(JSON.stringify(r.headers), r.body);
  return r;
}

/** Asserts a refusal: status, code, a deny record with that code, and nothing forwarded. */
async function expectRefused(send: () => Promise<{ status: number; body: string; id?: string }>, status: number, code: string) {
  const before = upstream.received.length;
  const r = await send();
  expect(r.status).toBe(status);
  const body = JSON.parse(r.body);
  expect(body.error.code).toBe(code);
  const record = gw.audit().find((x) => x.decision_id === body.error.decision_id);
  expect(record).toMatchObject({ type: 'decision', decision: 'deny', code, status });
  expect(upstream.received.length).toBe(before);
  return body;
}

describe('allowed calls', () => {
  test('G1: an allowed GET reaches the upstream with the route credential, not the agent key', async () => {
    const r = await call({ path: '/api/items?b=2&a=1', headers: { ...auth, cookie: 'session=agent-cookie', 'proxy-authorization': 'Basic eA==' } });
    expect(r.status).toBe(200);
    const got = upstream.received.at(-1)!;
    expect(got.url).toBe('/base/items?b=2&a=1');
    expect(got.headers.authorization).toBe(`Bearer ${CANARY}`);
    expect(got.headers.cookie).toBeUndefined();
    expect(got.headers['proxy-authorization']).toBeUndefined();
    expect(JSON.stringify(got.headers)).not.toContain(AGENT_KEY);
    const id = r.headers['x-portcullis-decision-id'] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(got.headers['x-portcullis-decision-id']).toBe(id);
  });

  test('G2: the upstream echoing the credential back is masked before the agent sees it', async () => {
    const r = await call({ path: '/api/echo', headers: auth });
    expect(r.status).toBe(200);
    expect(r.body).not.toContain(CANARY);
    expect(r.body).toContain('*'.repeat(CANARY.length));
    expect(JSON.parse(r.body).url).toBe('/base/echo');
  });

  test('an upstream cannot forge a Portcullis refusal or decision id', async () => {
    const r = await call({ path: '/api/forge', headers: auth });
    expect(r.status).toBe(200);
    expect(r.headers['x-portcullis-error']).toBeUndefined();
    expect(r.headers['x-portcullis-decision-id']).not.toBe('forged');
    const denied = await call({ path: '/api/admin', headers: auth });
    expect(denied.headers['x-portcullis-error']).toBe('PC_POLICY_DENIED');
  });

  test('G2: an echoed credential is masked in a streamed (chunked) response too', async () => {
    const r = await call({ path: '/api/stream-echo', headers: auth });
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.body).toBe(`token=Bearer ${'*'.repeat(CANARY.length)};`);
  });

  test('G1: a header credential replaces one the agent sent', async () => {
    const r = await call({ path: '/hdr/x', headers: { ...auth, 'x-api-key': 'agent-supplied' } });
    expect(r.status).toBe(200);
    expect(upstream.received.at(-1)!.headers['x-api-key']).toBe(HEADER_CANARY);
    expect(r.body).not.toContain(HEADER_CANARY);
  });

  test('G1: a route without a credential gets none', async () => {
    const r = await call({ path: '/open/x', headers: auth });
    expect(r.status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBeUndefined();
  });

  test('G7: the bytes the policy judged are the bytes forwarded', async () => {
    const body = '{ "amount" : 42,\n  "note": "caf\\u00e9" }';
    const r = await call({ method: 'POST', path: '/api/charges', headers: { ...auth, 'content-type': 'application/json' }, body });
    expect(r.status).toBe(200);
    expect(upstream.received.at(-1)!.body.toString('utf8')).toBe(body);
  });

  test('G3: the decision record is written before forwarding, then the outcome', async () => {
    const r = await call({ path: '/api/audited', headers: auth });
    const id = r.headers['x-portcullis-decision-id'];
    const outcome = await gw.waitForAudit((x) => x.decision_id === id && x.type === 'outcome');
    const records = gw.audit();
    const decision = records.find((x) => x.decision_id === id && x.type === 'decision')!;
    expect(decision).toMatchObject({
      decision: 'allow',
      agent: 'bot',
      route: 'api',
      method: 'GET',
      path: '/api/audited',
      credential: 'api',
      reasons: ['read allowed'],
    });
    expect(decision.policy_revision).toBe(gw.gateway.policy.current.revision);
    expect(decision.seq).toBeLessThan(outcome.seq);
    expect(outcome).toMatchObject({ status: 200 });
    expect(typeof outcome.latency_ms).toBe('number');
  });
});

describe('G4 G5: denied calls are audited and never forwarded', () => {
  test('a policy deny is 403 with reasons, audited, and nothing is forwarded', async () => {
    const body = await expectRefused(() => call({ path: '/api/admin/users', headers: auth }), 403, 'PC_POLICY_DENIED');
    expect(body.error.reasons).toEqual(['no rule allows this call']);
  });

  test('an argument over the limit is denied', async () => {
    await expectRefused(
      () => call({ method: 'POST', path: '/api/charges', headers: { ...auth, 'content-type': 'application/json' }, body: '{"amount": 101}' }),
      403,
      'PC_POLICY_DENIED',
    );
  });

  test('no agent key: the policy sees agent null and denies', async () => {
    await expectRefused(() => call({ path: '/api/items' }), 403, 'PC_POLICY_DENIED');
    expect(gw.audit().at(-1)).toMatchObject({ agent: null, decision: 'deny' });
  });

  test('an unknown agent key is refused before the policy', async () => {
    await expectRefused(() => call({ path: '/api/items', headers: { authorization: 'Bearer not-a-key' } }), 401, 'PC_UNKNOWN_AGENT');
  });

  test('a malformed Authorization header is refused', async () => {
    await expectRefused(() => call({ path: '/api/items', headers: { authorization: 'Basic Ym90OnB3' } }), 401, 'PC_BAD_AUTHORIZATION');
  });

  test('an unknown route is 404', async () => {
    await expectRefused(() => call({ path: '/nope/x', headers: auth }), 404, 'PC_ROUTE_NOT_FOUND');
  });

  test.each([
    ['/api/../admin', 'dot segment'],
    ['/api/x/../../admin', 'nested dot segment'],
    ['/api/%2e%2e/admin', 'encoded dot segment'],
    ['/api/%2E%2e/admin', 'mixed-case encoded dots'],
    ['/api/./items', 'single dot'],
    ['/api//items', 'empty segment'],
    ['//api/items', 'leading //'],
    ['/api/a%2Fb', 'encoded slash'],
    ['/api/a%5cb', 'encoded backslash'],
    ['/api/a%252e%252e/admin', 'double encoding'],
    ['/api/items;x=1', 'path parameter'],
    ['/api/..;x/admin', 'dot segment with parameter'],
    ['/api/a%00b', 'encoded NUL'],
  ])('path trick %s (%s) is refused', async (path) => {
    await expectRefused(() => call({ path, headers: auth }), 400, 'PC_BAD_PATH');
  });

  test('a fragment in the request target is refused', async () => {
    await expectRefused(
      async () => {
        const r = await rawHttp(
          gw.gateway.url,
          `GET /api/items#frag HTTP/1.1\r\nhost: ${new URL(gw.gateway.url).host}\r\nauthorization: Bearer ${AGENT_KEY}\r\nconnection: close\r\n\r\n`,
        );
        const body = r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4);
        return { status: r.status, body };
      },
      400,
      'PC_BAD_PATH',
    );
  });

  test.each([
    ['authorization', `authorization: Bearer ${AGENT_KEY}\r\nauthorization: Bearer other`],
    ['host', 'host: b.example'],
    ['content-type', 'content-type: application/json\r\ncontent-type: text/plain'],
  ])('a duplicate %s header is refused', async (_name, extra) => {
    await expectRefused(
      async () => {
        const r = await rawHttp(gw.gateway.url, `GET /api/items HTTP/1.1\r\nhost: ${new URL(gw.gateway.url).host}\r\n${extra}\r\nconnection: close\r\n\r\n`);
        return { status: r.status, body: r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4) };
      },
      400,
      'PC_DUPLICATE_HEADER',
    );
  });

  test.each([
    ['{"amount": 1,', 'PC_INVALID_JSON'],
    ['{"amount": 1}{}', 'PC_INVALID_JSON'],
    ['{"amount": 1, "amount": 500}', 'PC_DUPLICATE_JSON_KEY'],
    ['{"amount": 1, "\\u0061mount": 500}', 'PC_DUPLICATE_JSON_KEY'],
    ['{"amount": 9007199254740993}', 'PC_UNSAFE_JSON_NUMBER'],
  ])('JSON body %s is refused with %s', async (body, code) => {
    await expectRefused(() => call({ method: 'POST', path: '/api/charges', headers: { ...auth, 'content-type': 'application/json' }, body }), 400, code);
  });

  test('invalid UTF-8 under a JSON content type is refused', async () => {
    await expectRefused(
      () =>
        call({
          method: 'POST',
          path: '/api/charges',
          headers: { ...auth, 'content-type': 'application/json' },
          body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
        }),
      400,
      'PC_INVALID_JSON',
    );
  });

  test('an oversized body is 413, declared or streamed', async () => {
    const big = JSON.stringify({ amount: 1, pad: 'x'.repeat(5000) });
    await expectRefused(
      () => call({ method: 'POST', path: '/api/charges', headers: { ...auth, 'content-type': 'application/json' }, body: big }),
      413,
      'PC_BODY_TOO_LARGE',
    );
    await expectRefused(
      async () => {
        const r = await rawHttp(
          gw.gateway.url,
          `POST /api/charges HTTP/1.1\r\nhost: ${new URL(gw.gateway.url).host}\r\nauthorization: Bearer ${AGENT_KEY}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${(5000).toString(16)}\r\n${'x'.repeat(5000)}\r\n0\r\n\r\n`,
        );
        return { status: r.status, body: r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4) };
      },
      413,
      'PC_BODY_TOO_LARGE',
    );
  });

  test('a compressed request body is refused', async () => {
    await expectRefused(
      () => call({ method: 'POST', path: '/api/charges', headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: 'xx' }),
      415,
      'PC_UNSUPPORTED_ENCODING',
    );
  });
});

describe('policy input', () => {
  test('carries route, agent, canonical path, query, headers without credentials, body and time', async () => {
    const r = await call({
      method: 'GET',
      path: '/api/inspect?tag=a&tag=b&q=x%20y',
      headers: { ...auth, cookie: 'c=1', 'x-trace': 't1', 'content-type': 'application/json' },
    });
    expect(r.status).toBe(403);
    const input = JSON.parse(JSON.parse(r.body).error.reasons[0]);
    expect(input.route).toBe('api');
    // An agent key's identity: the id, and every token-only member empty (docs/policy.md).
    expect(input.agent).toEqual(agentKeyIdentity('bot'));
    expect(input.request.method).toBe('GET');
    expect(input.request.path).toBe('/inspect');
    expect(input.request.query).toEqual({ tag: ['a', 'b'], q: ['x y'] });
    expect(input.request.headers['x-trace']).toBe('t1');
    expect(input.request.headers.authorization).toBeUndefined();
    expect(input.request.headers.cookie).toBeUndefined();
    expect(input.request.body).toBeUndefined();
    expect(new Date(input.time).toISOString()).toBe(input.time);
  });

  test('the header credential name is removed from what the policy sees', async () => {
    const r = await call({ path: '/hdr/inspect', headers: { ...auth, 'x-api-key': 'agent-value' } });
    const input = JSON.parse(JSON.parse(r.body).error.reasons[0]);
    expect(input.request.headers['x-api-key']).toBeUndefined();
  });
});

describe('G2: the canary secrets never leak', () => {
  test('not in anything the agent received, the logs, or the audit trail', async () => {
    expect(answers.length).toBeGreaterThan(20);
    for (const secret of [CANARY, HEADER_CANARY]) {
      for (const a of answers) expect(a).not.toContain(secret);
      expect(gw.logs()).not.toContain(secret);
      expect(gw.auditText()).not.toContain(secret);
    }
    expect(gw.logs().length).toBeGreaterThan(0);
    expect(gw.auditText().length).toBeGreaterThan(0);
  });
});

describe('G3: the audit trail', () => {
  test('every call has exactly one decision record, chained by seq and prev', () => {
    expect(verifyTrail(gw.auditDir).problems).toEqual([]);
    const decisions = gw.audit().filter((r) => r.type === 'decision');
    expect(decisions.length).toBeGreaterThan(20);
    expect(new Set(decisions.map((d) => d.decision_id)).size).toBe(decisions.length);
  });
});

describe('admin listener', () => {
  test('health, readiness and metrics, with helmet headers, on a separate listener', async () => {
    const admin = gw.gateway.adminUrl!;
    expect(admin).not.toBe(gw.gateway.url);
    const health = await rawRequest(admin, { path: '/healthz' });
    expect(health.status).toBe(200);
    expect(health.headers['x-content-type-options']).toBe('nosniff');
    expect(health.headers['content-security-policy']).toBeDefined();
    const revision = gw.gateway.policy.current.revision;
    expect(JSON.parse((await rawRequest(admin, { path: '/readyz' })).body)).toEqual({
      status: 'ready',
      problems: [],
      policy: { in_force: revision, on_disk: revision, drift: false, last_rejection: null },
      credentials: [expect.objectContaining({ name: 'api', type: 'bearer', ok: true }), expect.objectContaining({ name: 'hdr', type: 'header', ok: true })],
    });
    const metrics = (await rawRequest(admin, { path: '/metrics' })).body;
    expect(metrics).toMatch(/portcullis_decisions_total\{route="api",decision="allow",code=""\} [1-9]/);
    expect(metrics).toMatch(/portcullis_decisions_total\{route="api",decision="deny",code="PC_POLICY_DENIED"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_policy_eval_seconds_count [1-9]/);
    expect(metrics).toMatch(/portcullis_upstream_latency_seconds_count\{route="api",status_class="2xx"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_response_secrets_masked_total\{route="api"\} [1-9]/);
    // The agent listener does not serve admin paths.
    expect((await rawRequest(gw.gateway.url, { path: '/metrics' })).status).toBe(404);
  });
});

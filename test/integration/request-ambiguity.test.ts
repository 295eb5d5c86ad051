/**
 * Requests an upstream could read differently from the policy, through the real gateway with a
 * real recording upstream: header lookalikes, method overrides, the agent's proxy headers, Range
 * on credentialed and MCP routes, non-canonical UTF-8 in the target, `+` in the query, JSON the
 * policy would read rounded or repaired, and requests the HTTP parser itself refuses. Each
 * refusal is audited and nothing is forwarded (G4, G5); what is forwarded is what the policy
 * judged (G1, G7).
 */
import { keyHash, rawHttp, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const SECRET = 'hdr-secret-3b9d1f7a';
const TOKEN = 'bearer-secret-8c2e4a6d';
const KEY = 'request-ambiguity-agent-key';
const auth = { authorization: `Bearer ${KEY}` };

// Allows everything; `x-inspect: 1` makes it deny with what it saw, so a test can read it.
const POLICY = `package portcullis

default decision := {"allow": true, "reasons": ["allowed"]}

decision := {"allow": false, "reasons": [json.marshal(input.request)]} if input.request.headers["x-inspect"] == "1"
`;

let upstream: Upstream;
let gw: TestGateway;

function yaml(up: string): string {
  return `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  hdr: { type: header, header: X-Api-Key, env: HDR_SECRET }
  tok: { type: bearer, env: TOK_SECRET }
agents:
  - id: bot
    key_sha256: "${keyHash(KEY)}"
routes:
  - { name: open, prefix: /open/, upstream: "${up}/" }
  - { name: hdr, prefix: /hdr/, upstream: "${up}/", credential: hdr }
  - { name: tok, prefix: /tok/, upstream: "${up}/", credential: tok }
  - { name: ranged, prefix: /ranged/, upstream: "${up}/", credential: tok, forward_range: true }
  - { name: mcp, kind: mcp, prefix: /mcp/, upstream: "${up}/mcp" }
`;
}

beforeAll(async () => {
  upstream = await startUpstream();
  gw = await startTestGateway({ yaml: yaml(upstream.url), policies: { 'p.rego': POLICY }, env: { HDR_SECRET: SECRET, TOK_SECRET: TOKEN } });
});

afterAll(async () => {
  await gw.close();
  await upstream.close();
});

/** Asserts a refusal: status, code, a deny record with that code, and nothing forwarded. */
async function expectRefused(options: Parameters<typeof rawRequest>[1], status: number, code: string): Promise<Record<string, any>> {
  const before = upstream.received.length;
  const r = await rawRequest(gw.gateway.url, options);
  expect({ path: options.path, status: r.status }).toEqual({ path: options.path, status });
  const body = JSON.parse(r.body);
  expect(body.error.code).toBe(code);
  expect(r.headers['x-portcullis-error']).toBe(code);
  const record = await gw.waitForAudit((x) => x.decision_id === body.error.decision_id);
  expect(record).toMatchObject({ type: 'decision', decision: 'deny', code, status });
  expect(upstream.received.length).toBe(before);
  return body;
}

/** Sends a call and returns what the upstream received. */
async function forwarded(options: Parameters<typeof rawRequest>[1]) {
  const before = upstream.received.length;
  const r = await rawRequest(gw.gateway.url, options);
  expect({ path: options.path, status: r.status, body: r.status === 200 ? '' : r.body }).toEqual({ path: options.path, status: 200, body: '' });
  expect(upstream.received.length).toBe(before + 1);
  return upstream.received.at(-1)!;
}

/** What the policy saw of a call (the inspect rule denies with it). */
async function policySaw(options: Parameters<typeof rawRequest>[1]): Promise<Record<string, any>> {
  const r = await rawRequest(gw.gateway.url, { ...options, headers: { ...options.headers, 'x-inspect': '1' } });
  expect(r.status).toBe(403);
  return JSON.parse(JSON.parse(r.body).error.reasons[0]);
}

describe('header lookalikes', () => {
  test('G1: X_Api_Key from the agent is not forwarded next to the route credential, nor shown to the policy', async () => {
    const got = await forwarded({
      path: '/hdr/x',
      headers: { ...auth, X_Api_Key: 'agent-value', x_API_key: 'agent-value-2', Proxy_Authorization: 'Basic eA==' },
    });
    expect(got.headers['x-api-key']).toBe(SECRET);
    expect(JSON.stringify(got.headers)).not.toContain('agent-value');
    expect(Object.keys(got.headers).filter((h) => h.replace(/_/g, '-') === 'proxy-authorization')).toEqual([]);
    const saw = await policySaw({ path: '/hdr/x', headers: { ...auth, X_Api_Key: 'agent-value' } });
    expect(Object.keys(saw.headers).filter((h) => h.includes('api'))).toEqual([]);
  });

  test('G1: lookalikes of Authorization-type headers are dropped on every route', async () => {
    const got = await forwarded({
      path: '/open/x',
      headers: { ...auth, proxy_authorization: 'Basic eA==', Transfer_Encoding: 'chunked', content_length: '5', X_Portcullis_Decision_Id: 'forged' },
    });
    expect(Object.keys(got.headers).filter((h) => h.includes('_'))).toEqual([]);
    expect(got.headers['x-portcullis-decision-id']).not.toBe('forged');
  });
});

describe('method overrides', () => {
  test.each([
    [{ 'X-HTTP-Method-Override': 'DELETE' }, '/open/items/1'],
    [{ 'X-Method-Override': 'DELETE' }, '/open/items/1'],
    [{ 'X-HTTP-Method': 'DELETE' }, '/open/items/1'],
    [{ X_HTTP_Method_Override: 'DELETE' }, '/open/items/1'],
    [{}, '/open/items/1?_method=DELETE'],
    [{}, '/open/items/1?a=1&_METHOD=delete'],
  ])('G5: a GET the policy allowed cannot become another method upstream (%j %s)', async (headers, path) => {
    await expectRefused({ path, headers: { ...auth, ...headers } }, 400, 'PC_METHOD_OVERRIDE');
  });

  test('G5: a _method field in a form body is refused', async () => {
    await expectRefused(
      { method: 'POST', path: '/open/items/1', headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=x&_method=DELETE' },
      400,
      'PC_METHOD_OVERRIDE',
    );
  });

  test('an ordinary form body and a query parameter that merely contains "method" pass', async () => {
    await forwarded({
      method: 'POST',
      path: '/open/items/1?method=x',
      headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=x&method=y',
    });
  });
});

describe('proxy headers', () => {
  const agentProxyHeaders = {
    'X-Forwarded-For': '10.9.9.9',
    'X-Forwarded-Host': 'evil.example',
    'X-Forwarded-Proto': 'https',
    'X-Forwarded-Prefix': '/admin',
    'X-Forwarded-Port': '443',
    X_Forwarded_For: '10.8.8.8',
    Forwarded: 'for=10.9.9.9;host=evil.example',
    'X-Real-IP': '10.9.9.9',
    'X-Original-URL': '/admin/delete',
    'X-Rewrite-URL': '/admin/delete',
    'X-Client-IP': '10.9.9.9',
    'True-Client-IP': '10.9.9.9',
    'X-Original-Host': 'evil.example',
  };

  test("G7: the agent's proxy headers are dropped and the gateway's own are forwarded", async () => {
    const got = await forwarded({ path: '/open/x', headers: { ...auth, ...agentProxyHeaders } });
    expect(JSON.stringify(got.headers)).not.toMatch(/10\.9\.9\.9|10\.8\.8\.8|evil\.example|\/admin/);
    expect(got.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(got.headers['x-forwarded-proto']).toBe('http');
    expect(got.headers['x-forwarded-host']).toBe(new URL(gw.gateway.url).host);
    for (const h of [
      'forwarded',
      'x-real-ip',
      'x-original-url',
      'x-rewrite-url',
      'x-client-ip',
      'true-client-ip',
      'x-original-host',
      'x-forwarded-prefix',
      'x-forwarded-port',
      'x_forwarded_for',
    ])
      expect(got.headers[h]).toBeUndefined();
  });

  test('G7: the policy sees the same proxy headers that are forwarded', async () => {
    const saw = await policySaw({ path: '/open/x', headers: { ...auth, ...agentProxyHeaders } });
    expect(saw.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(saw.headers['x-forwarded-proto']).toBe('http');
    expect(saw.headers['x-forwarded-host']).toBe(new URL(gw.gateway.url).host);
    expect(JSON.stringify(saw.headers)).not.toMatch(/10\.9\.9\.9|evil\.example/);
  });
});

describe('Range', () => {
  const ranged = { Range: 'bytes=0-9', 'If-Range': '"v1"', If_Range: '"v1"' };

  test.each(['/hdr/x', '/tok/x'])('G2: %s (a route with a credential) forwards no Range, and the policy sees none', async (path) => {
    const got = await forwarded({ path, headers: { ...auth, ...ranged } });
    expect(Object.keys(got.headers).filter((h) => /range/i.test(h))).toEqual([]);
    const saw = await policySaw({ path, headers: { ...auth, ...ranged } });
    expect(Object.keys(saw.headers).filter((h) => /range/i.test(h))).toEqual([]);
  });

  test('G2: an MCP route forwards no Range', async () => {
    const got = await forwarded({ path: '/mcp/', headers: { ...auth, accept: 'text/event-stream', ...ranged } });
    expect(Object.keys(got.headers).filter((h) => /range/i.test(h))).toEqual([]);
  });

  test('a route without a credential, or one with forward_range: true, forwards Range as sent', async () => {
    for (const path of ['/open/x', '/ranged/x']) {
      const got = await forwarded({ path, headers: { ...auth, Range: 'bytes=0-9', 'If-Range': '"v1"' } });
      expect({ path, range: got.headers.range, ifRange: got.headers['if-range'] }).toEqual({ path, range: 'bytes=0-9', ifRange: '"v1"' });
    }
  });
});

describe('UTF-8 in the request target', () => {
  test.each([
    '/open/%C0%AE%C0%AE/admin', // overlong "."
    '/open/a%C0%AFb', // overlong "/"
    '/open/%E0%80%AE', // 3-byte overlong "."
    '/open/%EF%BC%8E%EF%BC%8E/admin', // fullwidth full stop: NFKC "."
    '/open/a%EF%BC%8Fb', // fullwidth solidus: NFKC "/"
    '/open/a%EF%BC%BCb', // fullwidth reverse solidus: NFKC "\\"
    '/open/%E2%80%A4%E2%80%A4/x', // one dot leader: NFKC "."
    '/open/%EF%BD%81dmin', // fullwidth "a": NFKC "admin"
    '/open/e%CC%81', // not NFC: e + combining acute
    '/open/%ED%A0%80', // an encoded surrogate
    '/open/%FF', // not UTF-8 at all
    '/open/%C3', // truncated sequence
    '/open/x?q=%C0%AE', // invalid UTF-8 in the query
    '/open/x?%FF=1',
  ])('G5: %s is refused as PC_BAD_PATH', async (path) => {
    await expectRefused({ path, headers: auth }, 400, 'PC_BAD_PATH');
  });

  test('G7: valid NFC UTF-8 escapes pass, canonical and unchanged', async () => {
    const got = await forwarded({ path: '/open/caf%c3%a9/%E2%82%AC?q=%E2%82%AC', headers: auth });
    expect(got.url).toBe('/caf%C3%A9/%E2%82%AC?q=%E2%82%AC');
  });
});

describe('query "+"', () => {
  test('G7: "+" and "%20" both mean a space to the policy and are forwarded as %20; a literal plus is %2B', async () => {
    const path = '/open/x?q=a+b&r=a%20b&s=a%2Bb';
    const saw = await policySaw({ path, headers: auth });
    expect(saw.query).toEqual({ q: ['a b'], r: ['a b'], s: ['a+b'] });
    const got = await forwarded({ path, headers: auth });
    expect(got.url).toBe('/x?q=a%20b&r=a%20b&s=a%2Bb');
    // What the upstream reads, under either convention, is what the policy saw.
    const query = got.url.slice(got.url.indexOf('?') + 1);
    expect([...new URLSearchParams(query)]).toEqual([
      ['q', 'a b'],
      ['r', 'a b'],
      ['s', 'a+b'],
    ]);
    expect(query.split('&').map((p) => decodeURIComponent(p.split('=')[1]))).toEqual(['a b', 'a b', 'a+b']);
  });
});

describe('JSON bodies', () => {
  const json = { ...auth, 'content-type': 'application/json' };

  test.each(['{"amount": 100.00000000000000001}', '{"id": 9007199254740993.0}', '{"x": 1e-400}', '[12345678901234567890.5]', '{"x": 4.9406564584124654e-324}'])(
    'G5: %s, which a double rounds, is refused',
    async (body) => {
      await expectRefused({ method: 'POST', path: '/open/x', headers: json, body }, 400, 'PC_UNSAFE_JSON_NUMBER');
    },
  );

  test('G7: numbers a double holds exactly as written pass, byte for byte', async () => {
    const body = '{"a": 0.1, "b": 1.0, "c": 1e300, "d": -0, "e": 0.30000000000000004, "f": 5e-324, "g": 1e20}';
    const got = await forwarded({ method: 'POST', path: '/open/x', headers: json, body });
    expect(got.body.toString()).toBe(body);
  });

  test('G5: a body that starts with a UTF-8 BOM is refused, not judged without it', async () => {
    await expectRefused(
      { method: 'POST', path: '/open/x', headers: json, body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')]) },
      400,
      'PC_INVALID_JSON',
    );
  });

  test.each(['{"a": "\\ud800"}', '{"\\udc00": 1}', '["x\\ud800\\u0041"]'])('G5: a lone surrogate escape %s is PC_INVALID_JSON', async (body) => {
    await expectRefused({ method: 'POST', path: '/open/x', headers: json, body }, 400, 'PC_INVALID_JSON');
  });

  test('a surrogate pair escape passes', async () => {
    await forwarded({ method: 'POST', path: '/open/x', headers: json, body: '{"a": "\\ud83d\\ude00"}' });
  });
});

describe('requests the HTTP parser refuses', () => {
  /** Sends raw bytes; the answer must be a JSON refusal with the code, closed, audited, nothing forwarded. */
  async function expectParserRefusal(text: string, status: number, code: string) {
    const before = upstream.received.length;
    const started = Date.now();
    // The gateway's own Host, so a request that parses gets as far as the body (G20 checks Host first).
    const r = await rawHttp(
      gw.gateway.url,
      text.replace(/\r?\nHost: a\r?\n/, (m) => m.replace('a', new URL(gw.gateway.url).host)),
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(r.status).toBe(status);
    const [head, body] = [r.raw.slice(0, r.raw.indexOf('\r\n\r\n')), r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4)];
    expect(head.toLowerCase()).toContain(`x-portcullis-error: ${code.toLowerCase()}`);
    expect(head.toLowerCase()).toContain('connection: close');
    const err = JSON.parse(body).error;
    expect(err.code).toBe(code);
    const record = await gw.waitForAudit((x) => x.decision_id === err.decision_id);
    expect(record).toMatchObject({ type: 'decision', agent: null, route: null, decision: 'deny', code, status, credential: null, policy_revision: null });
    expect(upstream.received.length).toBe(before);
    return record;
  }

  test.each([
    ['Content-Length with Transfer-Encoding', 'POST /open/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['an obfuscated Transfer-Encoding', 'POST /open/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n'],
    ['obs-fold', 'GET /open/x HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n'],
    ['bare LF line ends', 'GET /open/x HTTP/1.1\nHost: a\n\n'],
    ['whitespace before a colon', 'GET /open/x HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['a bad chunk size', 'POST /open/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
  ])('G4: %s is answered 400 PC_BAD_HTTP with an audit record and a metric', async (_why, text) => {
    await expectParserRefusal(text, 400, 'PC_BAD_HTTP');
    const metrics = await gw.gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/portcullis_decisions_total\{[^}]*decision="deny"[^}]*code="PC_BAD_HTTP"[^}]*\} [1-9]/);
  });

  test('G4: headers over the limit are answered 431 PC_HEADERS_TOO_LARGE', async () => {
    await expectParserRefusal(`GET /open/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'PC_HEADERS_TOO_LARGE');
  });

  test('G4: CONNECT is answered at once, audited, not tunnelled', async () => {
    const record = await expectParserRefusal('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 400, 'PC_BAD_HTTP');
    expect(record.method).toBe('CONNECT');
  });

  test('G4: a bare HTTP/0.9 request line (nothing after it) is answered at once, not left to the 30 s header timeout', async () => {
    const before = upstream.received.length;
    const t0 = performance.now();
    const r = await rawHttp(gw.gateway.url, 'GET /open/x\r\n');
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(r.status).toBe(400);
    const err = JSON.parse(r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4)).error;
    expect(err.code).toBe('PC_BAD_HTTP');
    expect(await gw.waitForAudit((x) => x.decision_id === err.decision_id)).toMatchObject({ decision: 'deny', code: 'PC_BAD_HTTP', status: 400, agent: null });
    expect(upstream.received.length).toBe(before);
  }, 10_000);

  test('G4: an HTTP/0.9 request line, which llhttp reads as version 0.9 once a blank line follows, is refused, not forwarded', async () => {
    const before = upstream.received.length;
    const r = await rawHttp(gw.gateway.url, 'GET /open/x\r\n\r\n');
    expect(r.status).toBe(400);
    const err = JSON.parse(r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4)).error;
    expect(err.code).toBe('PC_BAD_HTTP');
    expect(await gw.waitForAudit((x) => x.decision_id === err.decision_id)).toMatchObject({ decision: 'deny', code: 'PC_BAD_HTTP', status: 400 });
    expect(upstream.received.length).toBe(before);
  });
});

/** Request header rules: credentials and their `_` lookalikes, proxy headers, Range. */
import type { RouteConfig } from '../../src/config/types';
import type { GatewayError } from '../../src/errors';
import { assertNoCredentialQuery, forwardableRequestHeaders, normalisedHeaderName } from '../../src/proxy/headers';
import { assertNoMethodOverride } from '../../src/proxy/method-override';

const route = (over: Partial<RouteConfig>): RouteConfig =>
  ({
    name: 'r',
    prefix: '/r/',
    kind: 'http',
    mcp: null,
    origin: 'http://u',
    basePath: '/',
    credential: null,
    credentialChoices: new Map(),
    credentialHeaders: [],
    credentialHeaderPrefixes: [],
    timeouts: { connectMs: 1, headersMs: 1, idleMs: 1 },
    forwardRange: true,
    ...over,
  }) as RouteConfig;
const withHeader = route({ credentialHeaders: ['x-api-key'], forwardRange: false });
const client = { address: '10.0.0.7', host: 'gw.local:8080' };

test('names are read as stacks that fold "_" into "-" read them', () => {
  expect(normalisedHeaderName('x_api_key')).toBe('x-api-key');
  expect(normalisedHeaderName('x-trace')).toBe('x-trace');
});

test('G1: the credential header, agent credentials and their lookalikes are dropped', () => {
  const out = forwardableRequestHeaders(
    { 'x-api-key': 'a', x_api_key: 'b', 'x_api-key': 'c', proxy_authorization: 'd', cookie: 'e', authorization: 'f', 'x-trace': 't' },
    withHeader,
    client,
  );
  expect(Object.keys(out).sort()).toEqual(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-trace']);
});

test("G7: the agent's proxy headers give way to the gateway's own", () => {
  const out = forwardableRequestHeaders(
    {
      'x-forwarded-for': '1.1.1.1',
      'x-forwarded-prefix': '/p',
      x_forwarded_host: 'e',
      forwarded: 'for=1',
      'x-real-ip': '1',
      'x-original-url': '/x',
      'x-rewrite-url': '/x',
      'true-client-ip': '1',
      'x-client-ip': '1',
      'x-original-host': 'e',
    },
    route({}),
    client,
  );
  expect(out).toEqual({ 'x-forwarded-for': '10.0.0.7', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'gw.local:8080' });
  expect(forwardableRequestHeaders({}, route({}), { address: undefined, host: undefined })).toEqual({ 'x-forwarded-proto': 'http' });
});

test('G2: Range and If-Range are withheld where the route does not forward ranges', () => {
  const h = { range: 'bytes=0-1', 'if-range': '"e"', if_range: '"e"' };
  expect(Object.keys(forwardableRequestHeaders(h, withHeader, client)).filter((k) => k.includes('range'))).toEqual([]);
  expect(forwardableRequestHeaders(h, route({}), client)).toMatchObject({ range: 'bytes=0-1', 'if-range': '"e"' });
});

test('G5: method overrides are refused wherever they hide', () => {
  const code = (f: () => void) => {
    try {
      f();
      return 'accepted';
    } catch (e) {
      return (e as GatewayError).code;
    }
  };
  const form = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' };
  expect(code(() => assertNoMethodOverride({ 'x-http-method-override': 'DELETE' }, [], Buffer.alloc(0)))).toBe('PC_METHOD_OVERRIDE');
  expect(code(() => assertNoMethodOverride({ x_method_override: 'DELETE' }, [], Buffer.alloc(0)))).toBe('PC_METHOD_OVERRIDE');
  expect(code(() => assertNoMethodOverride({}, [['_Method', 'PUT']], Buffer.alloc(0)))).toBe('PC_METHOD_OVERRIDE');
  expect(code(() => assertNoMethodOverride(form, [], Buffer.from('a=1&%5Fmethod=DELETE')))).toBe('PC_METHOD_OVERRIDE');
  expect(code(() => assertNoMethodOverride({ 'content-type': 'application/json' }, [], Buffer.from('{"_method":"DELETE"}')))).toBe('accepted');
  expect(code(() => assertNoMethodOverride(form, [['method', 'x']], Buffer.from('method=x')))).toBe('accepted');
});

test("G25: on a route with a SigV4 credential, the agent's x-amz-* headers (and lookalikes) and Authorization are dropped", () => {
  const sigv4 = route({ credentialHeaderPrefixes: ['x-amz-'], forwardRange: false });
  const out = forwardableRequestHeaders(
    {
      'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      'x-amz-security-token': 'agent-token',
      'x-amz-date': '20200101T000000Z',
      x_amz_target: 'DynamoDB_20120810.DeleteTable',
      authorization: 'AWS4-HMAC-SHA256 Credential=AKIAAGENT/x',
      'content-type': 'application/octet-stream',
      'x-amzx': 'kept: not the x-amz- prefix',
    },
    sigv4,
    client,
  );
  expect(Object.keys(out).sort()).toEqual(['content-type', 'x-amzx', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);
  // A route without such a credential forwards them: the prefix rule is the credential's, not global.
  expect(forwardableRequestHeaders({ 'x-amz-meta-a': '1' }, route({}), client)).toMatchObject({ 'x-amz-meta-a': '1' });
});

test('G25: on a SigV4 route, a query parameter named X-Amz-* (presigned-URL authentication) is refused; elsewhere it passes', () => {
  const sigv4 = route({ credentialHeaderPrefixes: ['x-amz-'] });
  const code = (query: [string, string][], r: RouteConfig) => {
    try {
      assertNoCredentialQuery(query, r);
      return 'accepted';
    } catch (e) {
      return (e as GatewayError).code;
    }
  };
  expect(code([['X-Amz-Security-Token', 'agent']], sigv4)).toBe('PC_BAD_REQUEST');
  expect(code([['x-amz-signature', 'ab']], sigv4)).toBe('PC_BAD_REQUEST');
  expect(code([['x_amz_credential', 'AKIA/x']], sigv4)).toBe('PC_BAD_REQUEST');
  expect(
    code(
      [
        ['x-id', 'PutObject'],
        ['list-type', '2'],
      ],
      sigv4,
    ),
  ).toBe('accepted');
  expect(code([['X-Amz-Security-Token', 'agent']], route({}))).toBe('accepted');
});

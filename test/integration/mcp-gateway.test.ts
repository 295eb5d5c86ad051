/**
 * MCP through the gateway with real peers: the SDK Client over Streamable HTTP → Portcullis →
 * server-everything, plus a counting upstream that proves refused messages are never forwarded.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { McpError, CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { mcpClient, startEverything, type EverythingServer } from '../helpers/mcp';

const POLICY = readFileSync(path.join(__dirname, '../fixtures/mcp/policy.rego'), 'utf8');
const ALICE = 'k-alice-0123456789';
const BOB = 'k-bob-0123456789';
const CANARY = 'canary-env-value-7f3a9c';

let everything: EverythingServer;
let counting: Upstream;
let gw: TestGateway;

function yaml(): string {
  return [
    'listen: 127.0.0.1:0',
    'admin: { enabled: false }',
    'policy: { path: ./policies, watch: false }',
    'audit: { path: ./audit }',
    'credentials:',
    '  counting-token: { type: bearer, env: COUNTING_TOKEN }',
    'agents:',
    `  - { id: alice, key_sha256: "${keyHash(ALICE)}" }`,
    `  - { id: bob, key_sha256: "${keyHash(BOB)}" }`,
    'routes:',
    `  - { name: everything, kind: mcp, prefix: /mcp/everything/, upstream: "${everything.url}" }`,
    `  - { name: everything-err, kind: mcp, prefix: /mcp/everything-err/, upstream: "${everything.url}", deny_as: error }`,
    `  - { name: counting, kind: mcp, prefix: /mcp/counting/, upstream: "${counting.url}/mcp", credential: counting-token }`,
  ].join('\n');
}

beforeAll(async () => {
  everything = await startEverything({ PORTCULLIS_CANARY: CANARY });
  counting = await startUpstream((req, res, body) => {
    const msg = body.length ? JSON.parse(body.toString()) : {};
    if (msg.method === 'tools/list' && msg.params?.cursor === 'plain') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { tools: [{ name: 'get-env', inputSchema: { type: 'object' } }] } }));
      return;
    }
    if (msg.method === 'tools/list') {
      // A careless server that echoes the request's credential into a visible tool's description.
      const tools = ['echo', 'get-env', 'bad name', 'get-sum'].map((name) => ({
        name,
        description: `seen: ${req.headers.authorization}`,
        inputSchema: { type: 'object' },
      }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { tools, nextCursor: 'page-2' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }));
  });
  gw = await startTestGateway({ yaml: yaml(), policies: { 'policy.rego': POLICY }, env: { COUNTING_TOKEN: 'upstream-secret-token' } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await counting?.close();
  await everything?.close();
});

const endpoint = (route: string) => `${gw.gateway.url}/mcp/${route}/`;

/** POSTs one raw body to an MCP route as alice. */
function post(route: string, body: string, headers: Record<string, string | string[]> = {}) {
  return rawRequest(gw.gateway.url, {
    method: 'POST',
    path: `/mcp/${route}/`,
    headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
  });
}

describe('SDK client through Portcullis to server-everything', () => {
  test('allowed tools return the server results (echo, get-sum)', async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const echo = await c.client.callTool({ name: 'echo', arguments: { message: 'hello through the gate' } });
      expect(echo.isError).toBeFalsy();
      expect(JSON.stringify(echo.content)).toContain('hello through the gate');
      const sum = await c.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
      expect(JSON.stringify(sum.content)).toContain('42');
    } finally {
      await c.close();
    }
  });

  test('G10: a denied tools/call (get-env) is an isError tool result with reasons and decision id; nothing is forwarded', async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const r = await c.client.callTool({ name: 'get-env', arguments: {} });
      expect(r.isError).toBe(true);
      const text = (r.content as { type: string; text: string }[])[0].text;
      expect(text).toContain('tool get-env is not granted');
      expect(text).not.toContain(CANARY);
      const id = /Decision ([0-9a-f-]{36})/.exec(text)![1];
      const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === id);
      expect(rec).toMatchObject({
        decision: 'deny',
        code: 'PC_POLICY_DENIED',
        route: 'everything',
        agent: 'alice',
        mcp: { kind: 'request', method: 'tools/call', tool: 'get-env' },
      });
      // An outcome record exists only for forwarded calls.
      expect(gw.audit().some((x) => x.type === 'outcome' && x.decision_id === id)).toBe(false);
    } finally {
      await c.close();
    }
  });

  test('G10: with deny_as: error a denied tools/call is a JSON-RPC error -31001 carrying decision_id and reasons', async () => {
    const c = await mcpClient(endpoint('everything-err'), { agentKey: ALICE });
    try {
      const err = await c.client.callTool({ name: 'get-env', arguments: {} }, CallToolResultSchema).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(McpError);
      const e = err as McpError;
      expect(e.code).toBe(-31001);
      expect(e.data).toMatchObject({ code: 'PC_POLICY_DENIED', reasons: ['tool get-env is not granted'] });
      const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === (e.data as { decision_id: string }).decision_id);
      expect(rec.decision).toBe('deny');
    } finally {
      await c.close();
    }
  });

  test('the policy judges arguments: get-sum over the limit is denied, under it allowed', async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const big = await c.client.callTool({ name: 'get-sum', arguments: { a: 5000, b: 1 } });
      expect(big.isError).toBe(true);
      expect(JSON.stringify(big.content)).toContain('limited to a <= 1000');
      const small = await c.client.callTool({ name: 'get-sum', arguments: { a: 999, b: 1 } });
      expect(JSON.stringify(small.content)).toContain('1000');
    } finally {
      await c.close();
    }
  });
});

describe('sessions are bound to the agent that created them', () => {
  test("G11: another agent presenting alice's session id gets 404 -32001, audited, not forwarded", async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const sid = c.transport.sessionId!;
      expect(sid).toBeTruthy();
      const r = await rawRequest(gw.gateway.url, {
        method: 'POST',
        path: '/mcp/everything/',
        headers: {
          authorization: `Bearer ${BOB}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sid,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
      });
      expect(r.status).toBe(404);
      const body = JSON.parse(r.body);
      expect(body).toMatchObject({ jsonrpc: '2.0', id: 7, error: { code: -32001, data: { code: 'PC_MCP_SESSION_NOT_FOUND' } } });
      const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === body.error.data.decision_id);
      expect(rec).toMatchObject({ agent: 'bob', decision: 'deny', code: 'PC_MCP_SESSION_NOT_FOUND' });
      // Same answer as for a forged id (no oracle for live sessions); the operator's log tells them apart.
      expect(body.error.data.reasons).toEqual(['the session is unknown, has ended, or belongs to another agent']);
      expect(gw.logs()).toContain('belongs to another agent');
      // Alice's own session still works.
      const echo = await c.client.callTool({ name: 'echo', arguments: { message: 'still mine' } });
      expect(JSON.stringify(echo.content)).toContain('still mine');
    } finally {
      await c.close();
    }
  });

  test('G11: a session id the gateway never saw created is refused', async () => {
    const r = await post('everything', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }), { 'mcp-session-id': 'forged-session-id' });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error.data.reasons).toEqual(['the session is unknown, has ended, or belongs to another agent']);
  });

  test('after DELETE the session is gone for the gateway too', async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    const sid = c.transport.sessionId!;
    await c.transport.terminateSession();
    await c.client.close();
    const r = await post('everything', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }), { 'mcp-session-id': sid });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error.code).toBe(-32001);
  });
});

describe('refusals: a JSON-RPC error, an audit record, nothing forwarded', () => {
  const cases: { name: string; body: string; headers?: Record<string, string>; status: number; rpc: number; code: string }[] = [
    { name: 'a batch', body: JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'ping' }]), status: 400, rpc: -32600, code: 'PC_MCP_BATCH' },
    {
      name: 'a one-element batch of an allowed call',
      body: JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }]),
      status: 400,
      rpc: -32600,
      code: 'PC_MCP_BATCH',
    },
    {
      name: 'a duplicate key',
      body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"get-env"}}',
      status: 400,
      rpc: -32600,
      code: 'PC_DUPLICATE_JSON_KEY',
    },
    {
      name: 'a duplicate key deep in the arguments',
      body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a","message":"b"}}}',
      status: 400,
      rpc: -32600,
      code: 'PC_DUPLICATE_JSON_KEY',
    },
    {
      name: 'a tool name with a space',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo now', arguments: {} } }),
      status: 400,
      rpc: -32602,
      code: 'PC_MCP_BAD_NAME',
    },
    {
      name: 'a tool name of 129 characters',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'e'.repeat(129) } }),
      status: 400,
      rpc: -32602,
      code: 'PC_MCP_BAD_NAME',
    },
    {
      name: 'a tool name with a non-ASCII letter',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'еcho' } }),
      status: 400,
      rpc: -32602,
      code: 'PC_MCP_BAD_NAME',
    },
    {
      name: 'Mcp-Method disagreeing with the body',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } }),
      headers: { 'mcp-method': 'tools/list' },
      status: 400,
      rpc: -32020,
      code: 'PC_MCP_HEADER_MISMATCH',
    },
    {
      name: 'Mcp-Name disagreeing with the body',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'get-env' } }),
      headers: { 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
      status: 400,
      rpc: -32020,
      code: 'PC_MCP_HEADER_MISMATCH',
    },
    {
      name: 'a 2026-07-28 POST without Mcp-Method',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      headers: { 'mcp-protocol-version': '2026-07-28' },
      status: 400,
      rpc: -32020,
      code: 'PC_MCP_HEADER_MISMATCH',
    },
    {
      name: 'a 2026-07-28 tools/call without Mcp-Name',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } }),
      headers: { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call' },
      status: 400,
      rpc: -32020,
      code: 'PC_MCP_HEADER_MISMATCH',
    },
    { name: 'jsonrpc "1.0"', body: JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'ping' }), status: 400, rpc: -32600, code: 'PC_MCP_INVALID_MESSAGE' },
    { name: 'no jsonrpc member', body: JSON.stringify({ id: 1, method: 'ping' }), status: 400, rpc: -32600, code: 'PC_MCP_INVALID_MESSAGE' },
    {
      name: 'an unexpected member',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', extra: true }),
      status: 400,
      rpc: -32600,
      code: 'PC_MCP_INVALID_MESSAGE',
    },
    { name: 'a null id', body: JSON.stringify({ jsonrpc: '2.0', id: null, method: 'ping' }), status: 400, rpc: -32600, code: 'PC_MCP_INVALID_MESSAGE' },
    {
      name: 'params as an array',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: [] }),
      status: 400,
      rpc: -32600,
      code: 'PC_MCP_INVALID_MESSAGE',
    },
    { name: 'a JSON string', body: '"ping"', status: 400, rpc: -32600, code: 'PC_MCP_INVALID_MESSAGE' },
    { name: 'invalid JSON', body: '{"jsonrpc":"2.0",', status: 400, rpc: -32700, code: 'PC_INVALID_JSON' },
    {
      name: 'a response with both result and error',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'x' } }),
      status: 400,
      rpc: -32600,
      code: 'PC_MCP_INVALID_MESSAGE',
    },
  ];

  test.each(cases)('G10: $name → $status $rpc $code', async ({ body, headers, status, rpc, code }) => {
    const before = counting.received.length;
    const r = await post('counting', body, headers);
    expect(r.status).toBe(status);
    expect(r.headers['content-type']).toBe('application/json');
    const msg = JSON.parse(r.body);
    expect(msg).toMatchObject({ jsonrpc: '2.0', error: { code: rpc, data: { code } } });
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === msg.error.data.decision_id);
    expect(rec).toMatchObject({ decision: 'deny', code, route: 'counting', agent: 'alice' });
    expect(counting.received.length).toBe(before);
  });

  test('G10: a repeated Mcp-Method header is refused (a server could read the other copy)', async () => {
    const before = counting.received.length;
    const r = await post('counting', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), { 'mcp-method': ['tools/list', 'tools/call'] });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ jsonrpc: '2.0', error: { data: { code: 'PC_DUPLICATE_HEADER' } } });
    expect(counting.received.length).toBe(before);
  });

  test('a body that is not JSON at all (text/plain) is refused', async () => {
    const before = counting.received.length;
    const r = await post('counting', 'ping', { 'content-type': 'text/plain' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error.data.code).toBe('PC_MCP_INVALID_MESSAGE');
    expect(counting.received.length).toBe(before);
  });

  test('an unknown agent on an MCP route gets a JSON-RPC error, not a bare 401', async () => {
    const r = await rawRequest(gw.gateway.url, {
      method: 'POST',
      path: '/mcp/counting/',
      headers: { authorization: 'Bearer nobody', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600, data: { code: 'PC_UNKNOWN_AGENT' } } });
  });

  test('a path below the MCP endpoint is not routed', async () => {
    const r = await post('counting/extra', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }));
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error.data.code).toBe('PC_ROUTE_NOT_FOUND');
  });

  test('a matching Mcp-Method / Mcp-Name pair passes, and the route credential is attached only to the allowed call', async () => {
    const before = counting.received.length;
    const ok = await post('counting', JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } }), {
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'echo',
    });
    expect(ok.status).toBe(200);
    expect(counting.received.length).toBe(before + 1);
    const got = counting.received[counting.received.length - 1];
    expect(got.headers.authorization).toBe('Bearer upstream-secret-token');
    expect(got.headers['mcp-method']).toBe('tools/call');
    const denied = await post('counting', JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'get-env' } }));
    expect(denied.status).toBe(200);
    expect(JSON.parse(denied.body)).toMatchObject({ id: 4, result: { isError: true } });
    expect(counting.received.length).toBe(before + 1);
  });
});

describe('audit records of MCP calls', () => {
  test('G12: arguments are recorded after masking, with the masked pointers and a digest of the unmasked arguments', async () => {
    const args = { message: 'visible', secret: 'hunter2-do-not-log', card: { number: '4111111111111111', exp: '12/30' } };
    const r = await post('counting', JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'echo', arguments: args } }));
    expect(r.status).toBe(200);
    const id = r.headers['x-portcullis-decision-id'] as string;
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === id);
    expect(rec.mcp).toMatchObject({
      method: 'tools/call',
      tool: 'echo',
      arguments: { message: 'visible', secret: '[masked]', card: { number: '[masked]', exp: '12/30' } },
      masked: ['/arguments/secret', '/arguments/card/number'],
    });
    const { canonicalJson } = await import('../../src/audit/canonical-json');
    const { createHash } = await import('node:crypto');
    expect(rec.mcp.arguments_sha256).toBe(createHash('sha256').update(canonicalJson(args)).digest('hex'));
    expect(gw.auditText()).not.toContain('hunter2-do-not-log');
    expect(gw.auditText()).not.toContain('4111111111111111');
  });

  test('G12: a denied call masks its arguments too', async () => {
    const r = await post(
      'counting',
      JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'get-env', arguments: { secret: 'denied-secret-value' } } }),
    );
    const id = JSON.parse(r.body).result._meta['portcullis/decision_id'];
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === id);
    expect(rec.mcp.arguments).toEqual({ secret: '[masked]' });
    expect(gw.auditText()).not.toContain('denied-secret-value');
  });
});

describe('streaming through the gateway (SSE)', () => {
  test('a long-running tool streams its progress notifications through the gateway as they happen', async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const seen: { progress: number; at: number }[] = [];
      const started = Date.now();
      const r = await c.client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } }, CallToolResultSchema, {
        onprogress: (p) => seen.push({ progress: p.progress, at: Date.now() - started }),
      });
      expect(r.isError).toBeFalsy();
      expect(seen.map((s) => s.progress)).toEqual([1, 2, 3, 4]);
      // Streamed, not buffered: the first step arrived well before the last.
      expect(seen[3].at - seen[0].at).toBeGreaterThan(400);
    } finally {
      await c.close();
    }
  });

  test('a server-to-client sampling request completes through the gateway, and the answer is judged and audited', async () => {
    const { CreateMessageRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE, samplingReply: 'sampled by the test client' });
    try {
      let asked = '';
      c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        asked = JSON.stringify(req.params.messages);
        return { model: 'test-model', role: 'assistant', content: { type: 'text', text: 'sampled by the test client' } };
      });
      const r = await c.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'say hi', maxTokens: 10 } });
      expect(asked).toContain('say hi');
      expect(JSON.stringify(r.content)).toContain('sampled by the test client');
      await gw.waitForAudit((x) => x.type === 'decision' && x.agent === 'alice' && x.mcp?.kind === 'response' && x.decision === 'allow');
    } finally {
      await c.close();
    }
  });

  test('GET opens the session stream for its own agent only', async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const sid = c.transport.sessionId!;
      const get = (key: string, extra: Record<string, string> = {}) =>
        new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
          const u = new URL(endpoint('everything'));
          // eslint-disable-next-line @typescript-eslint/no-require-imports
          const req = (require('node:http') as typeof import('node:http')).request(
            {
              host: u.hostname,
              port: u.port,
              path: u.pathname,
              method: 'GET',
              headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...extra },
              agent: false,
            },
            (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d.toString()));
              // A live event stream stays open: look at its head, then hang up.
              setTimeout(() => {
                req.destroy();
                resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body });
              }, 300);
              res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
            },
          );
          req.on('error', reject);
          req.end();
        });
      const mine = await get(ALICE);
      // The SDK client may already hold the session's one standalone stream (then 409); either way it reached the server.
      expect([200, 409]).toContain(mine.status);
      const theirs = await get(BOB);
      expect(theirs.status).toBe(404);
      expect(JSON.parse(theirs.body).error.data.code).toBe('PC_MCP_SESSION_NOT_FOUND');
      const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.agent === 'alice' && x.mcp?.kind === 'stream');
      expect(rec.decision).toBe('allow');
    } finally {
      await c.close();
    }
  });

  test('a stream cut off mid-call resumes with Last-Event-ID through the gateway', async () => {
    const c = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const sid = c.transport.sessionId!;
      const http = await import('node:http');
      const u = new URL(endpoint('everything'));
      const headers = {
        authorization: `Bearer ${ALICE}`,
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sid,
        'mcp-protocol-version': '2025-11-25',
      };
      // POST a slow tool call and hang up after the first event that has an id.
      const firstId = await new Promise<string>((resolve, reject) => {
        const req = http.request(
          { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, agent: false },
          (res) => {
            let buf = '';
            res.on('data', (d: Buffer) => {
              buf += d.toString();
              const m = /^id: ?(.+)$/m.exec(buf);
              if (m && buf.includes('\n\n')) {
                req.destroy();
                resolve(m[1].trim());
              }
            });
          },
        );
        req.on('error', () => undefined);
        req.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: 'slow-1',
            method: 'tools/call',
            params: { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 }, _meta: { progressToken: 'tok' } },
          }),
        );
        setTimeout(() => reject(new Error('no event with an id')), 5000);
      });
      await new Promise((r) => setTimeout(r, 1300));
      // Resume on GET with Last-Event-ID: the server replays what came after, including the result.
      const replay = await new Promise<string>((resolve, reject) => {
        const req = http.request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            method: 'GET',
            headers: { ...headers, accept: 'text/event-stream', 'last-event-id': firstId },
            agent: false,
          },
          (res) => {
            let buf = '';
            res.on('data', (d: Buffer) => {
              buf += d.toString();
              if (buf.includes('"id":"slow-1"')) {
                req.destroy();
                resolve(buf);
              }
            });
          },
        );
        req.on('error', () => undefined);
        req.end();
        setTimeout(() => reject(new Error('no replay')), 5000);
      });
      expect(replay).toContain('"result"');
      expect(replay).toMatch(/^id: ?\S+/m);
    } finally {
      await c.close();
    }
  });
});

describe('the shipped starter library (policies/) on an MCP route', () => {
  test('assistant-bot may echo and add within limits, not dump the environment; echo arguments are masked in the trail', async () => {
    const key = 'k-assistant-0123456789';
    const starter = await startTestGateway({
      yaml: [
        'listen: 127.0.0.1:0',
        'admin: { enabled: false }',
        `policy: { path: ${path.join(__dirname, '../../policies')}, watch: false }`,
        'audit: { path: ./audit }',
        `agents: [{ id: assistant-bot, key_sha256: "${keyHash(key)}" }]`,
        `routes: [{ name: everything, kind: mcp, prefix: /mcp/, upstream: "${everything.url}" }]`,
      ].join('\n'),
      policies: {},
    });
    const c = await mcpClient(`${starter.gateway.url}/mcp/`, { agentKey: key });
    try {
      const echo = await c.client.callTool({ name: 'echo', arguments: { message: 'private words' } });
      expect(JSON.stringify(echo.content)).toContain('private words');
      const env = await c.client.callTool({ name: 'get-env', arguments: {} });
      expect(env.isError).toBe(true);
      expect(JSON.stringify(env.content)).not.toContain(CANARY);
      const big = await c.client.callTool({ name: 'get-sum', arguments: { a: 5000, b: 1 } });
      expect(JSON.stringify(big.content)).toContain('get-sum: a out of range');
      const rec = await starter.waitForAudit((x) => x.type === 'decision' && x.mcp?.tool === 'echo');
      expect(rec.mcp.arguments).toEqual({ message: '[masked]' });
      expect(starter.auditText()).not.toContain('private words');
    } finally {
      await c.close();
      await starter.close();
    }
  });
});

describe('G13: lists show only what the policy would let the agent use', () => {
  test('G13: tools/list over SSE from server-everything: denied tools hidden, `visible` wins over allow', async () => {
    const direct = await mcpClient(everything.url);
    const viaGw = await mcpClient(endpoint('everything'), { agentKey: ALICE });
    try {
      const all = (await direct.client.listTools()).tools.map((t) => t.name);
      expect(all).toEqual(expect.arrayContaining(['get-env', 'echo', 'get-sum', 'trigger-long-running-operation', 'get-annotated-message']));
      const shown = (await viaGw.client.listTools()).tools.map((t) => t.name).sort();
      // echo and get-sum are granted; get-annotated-message is shown by `visible: true`;
      // trigger-long-running-operation is granted but hidden by `visible: false`; get-env is denied.
      expect(shown).toEqual(['echo', 'get-annotated-message', 'get-sum']);
    } finally {
      await direct.close();
      await viaGw.close();
    }
  });

  test('G13: a JSON list answer is filtered, its other members kept; names the gateway would refuse are hidden', async () => {
    const r = await post('counting', JSON.stringify({ jsonrpc: '2.0', id: 21, method: 'tools/list' }));
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBeUndefined();
    const msg = JSON.parse(r.body);
    expect(msg.id).toBe(21);
    expect(msg.result.nextCursor).toBe('page-2');
    expect(msg.result.tools.map((t: { name: string }) => t.name)).toEqual(['echo', 'get-sum']);
    // G2 on the filtered path: the rewritten list still goes through the credential masker.
    expect(r.body).not.toContain('upstream-secret-token');
    expect(msg.result.tools[0].description).toBe(`seen: Bearer ${'*'.repeat('upstream-secret-token'.length)}`);
  });

  test('G13: a list answer the filter cannot read is cut off, never passed on; the outcome names the filter, not the upstream', async () => {
    const r = await post('counting', JSON.stringify({ jsonrpc: '2.0', id: 22, method: 'tools/list', params: { cursor: 'plain' } })).then(
      (x) => x,
      (e: Error) => ({ status: -1, body: e.message, headers: {} as Record<string, unknown> }),
    );
    expect(r.body).not.toContain('get-env');
    const id = (r.headers as Record<string, unknown>)['x-portcullis-decision-id'];
    const outcome = await gw.waitForAudit((x) => x.type === 'outcome' && (id === undefined || x.decision_id === id) && x.code === 'mcp_list_filter_failed');
    expect(outcome.code).toBe('mcp_list_filter_failed');
  });
});

/**
 * The stdio bridge with real peers: server-everything over stdio as the child, the SDK Client
 * over Streamable HTTP (undici on the bridge's unix socket) as the agent. No mocks.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Agent, fetch as undiciFetch, request, type Dispatcher } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CreateMessageRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { startStdioBridge, StdioBridgeError, type StdioBridge, type StdioServerSpec } from '../../src/mcp/stdio/bridge';
import { Secret } from '../../src/secret';
import { createLogger } from '../../src/observability/logger';

const root = path.resolve(__dirname, '../..');
const EVERYTHING = path.join(root, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const NOISY = path.join(root, 'test/fixtures/mcp/noisy-stdio-server.mjs');

jest.setTimeout(20_000);

/** A logger whose records land in an array. */
function captureLogs() {
  const records: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger('debug', stream), records, text: () => records.map((r) => JSON.stringify(r)).join('\n') };
}

function spec(overrides: Partial<StdioServerSpec> = {}): StdioServerSpec {
  return {
    route: 'everything',
    command: [process.execPath, EVERYTHING, 'stdio'],
    env: {},
    cwd: null,
    restart: { initialDelayMs: 100, maxDelayMs: 1000 },
    ...overrides,
  };
}

function socketFetch(bridge: StdioBridge): FetchLike {
  const dispatcher = new Agent({ connect: { socketPath: bridge.socketPath } });
  return (url, init) => undiciFetch(url, { ...(init as object), dispatcher } as never) as unknown as Promise<Response>;
}

async function connect(bridge: StdioBridge, capabilities: Record<string, object> = {}) {
  const client = new Client({ name: 'bridge-test', version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(`http://localhost${bridge.path}`), { fetch: socketFetch(bridge) });
  await client.connect(transport);
  return { client, transport };
}

const text = (result: any) => (result.content as { type: string; text: string }[]).map((c) => c.text).join('');

/** True while the process runs; a zombie (exited, not yet reaped by its new parent) counts as gone. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return !existsSync('/proc'); // gone between the two checks, or no /proc to ask
  }
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let bridge: StdioBridge | null = null;
let logs: ReturnType<typeof captureLogs>;
const clients: Client[] = [];

async function start(overrides: Partial<StdioServerSpec> = {}, limits = {}): Promise<StdioBridge> {
  logs = captureLogs();
  bridge = await startStdioBridge(spec(overrides), logs.log, limits);
  return bridge;
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => undefined);
  await bridge?.close();
  bridge = null;
});

test('tools/list, echo and get-sum through the bridge', async () => {
  const b = await start();
  const { client } = await connect(b);
  clients.push(client);
  const names = (await client.listTools()).tools.map((t) => t.name);
  expect(names).toEqual(expect.arrayContaining(['echo', 'get-sum', 'get-env', 'trigger-long-running-operation']));
  expect(text(await client.callTool({ name: 'echo', arguments: { message: 'through the bridge' } }))).toBe('Echo: through the bridge');
  expect(text(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } }))).toBe('The sum of 2 and 40 is 42.');
  expect(b.pids()).toHaveLength(1);
});

test('a long-running tool streams its progress notifications to the caller', async () => {
  const b = await start();
  const { client } = await connect(b);
  clients.push(client);
  const progress: number[] = [];
  const result = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  });
  expect(text(result)).toContain('Long running operation completed');
  expect(progress).toEqual([1, 2, 3, 4]);
});

test('sampling: the server asks the client, the client answers, the tool completes', async () => {
  const b = await start();
  const { client } = await connect(b, { sampling: {} });
  clients.push(client);
  const asked: string[] = [];
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    const content = req.params.messages[0].content as { type: string; text: string };
    asked.push(content.text);
    return { model: 'test-model', role: 'assistant', content: { type: 'text', text: 'sampled by the test client' } };
  });
  const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hello', maxTokens: 5 } });
  expect(asked).toEqual([expect.stringContaining('hello')]);
  expect(text(result)).toContain('sampled by the test client');
});

test('kill -9: the call in flight fails with -32603, the session carries on with a restarted child; exit, restart and stderr are logged', async () => {
  const b = await start();
  const { client } = await connect(b, { sampling: {} });
  clients.push(client);
  const [first] = b.pids();

  const inFlight = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 5, steps: 5 } });
  await new Promise((r) => setTimeout(r, 300));
  process.kill(first, 'SIGKILL');
  const failure = await inFlight.then(
    () => null,
    (err: unknown) => err,
  );
  expect(failure).toBeInstanceOf(McpError);
  expect(failure).toMatchObject({ code: -32603, message: expect.stringContaining('the stdio server exited') });

  // Sent while the child restarts: waits for it, then succeeds in the same session.
  expect(text(await client.callTool({ name: 'echo', arguments: { message: 'after the restart' } }))).toBe('Echo: after the restart');
  const [second] = b.pids();
  expect(second).not.toBe(first);
  expect(alive(first)).toBe(false);
  // The replayed notifications/initialized registered the capability-dependent tools again.
  expect((await client.listTools()).tools.map((t) => t.name)).toContain('trigger-sampling-request');

  // A second crash soon after: the back-off doubles.
  process.kill(second, 'SIGKILL');
  await until('the second exit', () => logs.records.filter((r) => r.msg === 'stdio server exited').length === 2);
  expect(text(await client.callTool({ name: 'echo', arguments: { message: 'again' } }))).toBe('Echo: again');

  const exits = logs.records.filter((r) => r.msg === 'stdio server exited');
  expect(exits.map((r) => [r.route, r.pid, r.signal])).toEqual([
    ['everything', first, 'SIGKILL'],
    ['everything', second, 'SIGKILL'],
  ]);
  expect(logs.records.filter((r) => r.msg === 'restarting stdio server').map((r) => r.delayMs)).toEqual([100, 200]);
  expect(logs.records.filter((r) => r.msg === 'stdio server restarted; session resumed')).toHaveLength(2);
  const stderr = logs.records.filter((r) => r.msg === 'stdio server stderr');
  for (const pid of [first, second])
    expect(stderr).toContainEqual(expect.objectContaining({ route: 'everything', pid, line: 'Starting default (STDIO) server...' }));
});

/** PIDs of a process's children (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
}

test('the whole process group goes: a server behind a shell (as with npx) is stopped on close() and killed when its leader dies', async () => {
  const b = await start({ command: ['/bin/sh', '-c', `"${process.execPath}" "${EVERYTHING}" stdio; exit 0`] });
  const { client } = await connect(b);
  clients.push(client);
  const [shell] = b.pids();
  const [server] = childrenOf(shell);
  expect(server).toEqual(expect.any(Number));
  process.kill(shell, 'SIGKILL');
  await until('the grandchild to be killed with its leader', () => !alive(server));
  // A call written while the bridge has not yet seen the exit is answered "the stdio server
  // exited" (correctly); on a loaded machine that window is wide, so wait for the bridge to see it.
  await until('the bridge to see the exit', () => logs.records.some((r) => r.msg === 'stdio server exited'));
  expect(text(await client.callTool({ name: 'echo', arguments: { message: 'restarted' } }))).toBe('Echo: restarted');
  const [shell2] = b.pids();
  const [server2] = childrenOf(shell2);
  await b.close();
  expect([alive(shell2), alive(server2)]).toEqual([false, false]);
});

test('a child that will not come back: waiting requests fail after restartWaitMs, restarts keep backing off', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stdio-once-'));
  try {
    // Starts once; every later start fails, as a server whose credentials were revoked would.
    const script = `[ -e "${dir}/started" ] && { echo "refusing to start again" >&2; exit 7; }; touch "${dir}/started"; exec "${process.execPath}" "${EVERYTHING}" stdio`;
    const b = await start({ command: ['/bin/sh', '-c', script], restart: { initialDelayMs: 50, maxDelayMs: 400 } }, { restartWaitMs: 800 });
    const { client } = await connect(b);
    clients.push(client);
    process.kill(b.pids()[0], 'SIGKILL');
    await until('the exit', () => logs.records.some((r) => r.msg === 'stdio server exited'));
    const started = Date.now();
    await expect(client.callTool({ name: 'echo', arguments: { message: 'x' } })).rejects.toMatchObject({
      code: -32603,
      message: expect.stringContaining('the stdio server did not restart in time'),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(750);
    const delays = logs.records.filter((r) => r.msg === 'restarting stdio server').map((r) => r.delayMs);
    expect(delays.slice(0, 4)).toEqual([50, 100, 200, 400]);
    expect(logs.records).toContainEqual(expect.objectContaining({ msg: 'stdio server exited', code: 7 }));
    expect(logs.records).toContainEqual(expect.objectContaining({ msg: 'stdio server stderr', line: 'refusing to start again' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DELETE ends the session and kills its child', async () => {
  const b = await start();
  const { client, transport } = await connect(b);
  clients.push(client);
  const [pid] = b.pids();
  expect(alive(pid)).toBe(true);
  await transport.terminateSession();
  await until('the child to exit', () => !alive(pid));
  expect(b.pids()).toEqual([]);
  const res = await request(`http://localhost${b.path}`, {
    dispatcher: new Agent({ connect: { socketPath: b.socketPath } }),
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': transport.sessionId ?? 'gone' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
  });
  expect(res.statusCode).toBe(404);
  await res.body.text();
});

test('close() stops every child and removes the socket and its directory', async () => {
  const b = await start();
  for (let i = 0; i < 2; i++) clients.push((await connect(b)).client);
  const pids = b.pids();
  expect(pids).toHaveLength(2);
  await b.close();
  for (const pid of pids) expect(alive(pid)).toBe(false);
  expect(existsSync(path.dirname(b.socketPath))).toBe(false);
  expect(logs.records.filter((r) => r.msg === 'stdio server exited')).toEqual([]);
});

test("the child sees the route's env, secrets included, and none of the gateway's other variables", async () => {
  process.env.PORTCULLIS_CANARY_OTHER_ROUTE_SECRET = 'canary-value-must-not-leak';
  try {
    const b = await start({ env: { VISIBLE_SETTING: 'plain-value', UPSTREAM_TOKEN: new Secret('s3cr3t-token-value', 'test') } });
    const { client } = await connect(b);
    clients.push(client);
    const env = JSON.parse(text(await client.callTool({ name: 'get-env', arguments: {} })));
    expect(env).toMatchObject({ VISIBLE_SETTING: 'plain-value', UPSTREAM_TOKEN: 's3cr3t-token-value', PATH: process.env.PATH });
    expect(env).not.toHaveProperty('PORTCULLIS_CANARY_OTHER_ROUTE_SECRET');
    expect(JSON.stringify(env)).not.toContain('canary-value-must-not-leak');
    // Only the allow-list and the route's own variables (Node may add a few of its own, e.g. none here).
    const allowed = ['PATH', 'HOME', 'LANG', 'TMPDIR', 'USER', 'SHELL', 'TERM', 'VISIBLE_SETTING', 'UPSTREAM_TOKEN'];
    expect(Object.keys(env).filter((k) => !allowed.includes(k))).toEqual([]);
    expect(logs.text()).not.toContain('s3cr3t-token-value');
  } finally {
    delete process.env.PORTCULLIS_CANARY_OTHER_ROUTE_SECRET;
  }
});

test('a command that does not resolve is rejected at start, naming it', async () => {
  const { log } = captureLogs();
  await expect(startStdioBridge(spec({ command: ['portcullis-no-such-mcp-server', '--stdio'] }), log)).rejects.toThrow(
    new StdioBridgeError('everything', 'command "portcullis-no-such-mcp-server" was not found on PATH'),
  );
  await expect(startStdioBridge(spec({ command: ['./no/such/server.js'] }), log)).rejects.toThrow(
    /command "\.\/no\/such\/server\.js" is not an executable file/,
  );
  await expect(startStdioBridge(spec({ command: [path.join(root, 'package.json')] }), log)).rejects.toThrow(/package\.json" is not an executable file/);
  await expect(startStdioBridge(spec({ cwd: '/no/such/dir' }), log)).rejects.toThrow(/cwd "\/no\/such\/dir" is not a directory/);
});

/** The JSON-RPC messages of an SSE body, as they arrive (priming events without data skipped). */
async function* sseMessages(body: AsyncIterable<Buffer> & { destroy(): void }): AsyncGenerator<any> {
  let buffer = '';
  try {
    for await (const chunk of body) {
      buffer += String(chunk);
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const data = buffer
          .slice(0, end)
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('');
        buffer = buffer.slice(end + 2);
        if (data.trim()) yield JSON.parse(data);
      }
    }
  } finally {
    body.destroy();
  }
}

describe('the endpoint', () => {
  let dispatcher: Dispatcher;
  const post = (b: StdioBridge, body: unknown, headers: Record<string, string> = {}) =>
    request(`http://localhost${b.path}`, {
      dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: JSON.stringify(body),
    });
  const initialize = (id: number, capabilities = {}) => ({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'raw', version: '1' } },
  });
  /** initialize + notifications/initialized by hand; returns the headers later requests need. */
  async function rawSession(b: StdioBridge, capabilities = {}): Promise<Record<string, string>> {
    const init = await post(b, initialize(1, capabilities));
    const headers = { 'mcp-session-id': init.headers['mcp-session-id'] as string, 'mcp-protocol-version': '2025-11-25' };
    await init.body.text();
    const initialized = await post(b, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
    expect(initialized.statusCode).toBe(202);
    await initialized.body.text();
    return headers;
  }
  const sample = (id: number) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'trigger-sampling-request', arguments: { prompt: `call ${id}`, maxTokens: 5 } },
  });
  const samplingAnswer = (id: unknown, text: string) => ({ jsonrpc: '2.0', id, result: { model: 'm', role: 'assistant', content: { type: 'text', text } } });

  test("a server-to-client request goes on the GET stream when one is open, else on the stream of the request in flight; the client's answer reaches the child", async () => {
    const b = await start();
    dispatcher = new Agent({ connect: { socketPath: b.socketPath } });
    const headers = await rawSession(b, { sampling: {} });

    // No GET stream yet: the sampling request arrives on the tool call's own stream.
    const first = await post(b, sample(2), headers);
    const onPost: any[] = [];
    for await (const message of sseMessages(first.body)) {
      onPost.push(message);
      if (message.method === 'sampling/createMessage') {
        const answered = await post(b, samplingAnswer(message.id, 'answer one'), headers);
        expect(answered.statusCode).toBe(202);
        await answered.body.text();
      }
      if (message.id === 2) break;
    }
    // (The child's tools/list_changed, sent when it was initialized, may ride here too: no GET stream yet.)
    const requestsAndResponses = onPost.filter((m) => m.id !== undefined);
    expect(requestsAndResponses.map((m) => m.method ?? `response ${m.id}`)).toEqual(['sampling/createMessage', 'response 2']);
    expect(requestsAndResponses[1].result.content[0].text).toContain('answer one');

    // With a GET stream open, it goes there, and the call's stream carries only the result.
    const get = await request(`http://localhost${b.path}`, { dispatcher, method: 'GET', headers: { ...headers, accept: 'text/event-stream' } });
    expect(get.statusCode).toBe(200);
    const second = await post(b, sample(3), headers);
    for await (const message of sseMessages(get.body)) {
      if (message.method !== 'sampling/createMessage') continue;
      expect(message.params.messages[0].content.text).toContain('call 3');
      const answered = await post(b, samplingAnswer(message.id, 'answer two'), headers);
      await answered.body.text();
      break;
    }
    const onSecond: any[] = [];
    for await (const message of sseMessages(second.body)) onSecond.push(message);
    expect(onSecond).toEqual([
      expect.objectContaining({
        id: 3,
        result: expect.objectContaining({ content: [expect.objectContaining({ text: expect.stringContaining('answer two') })] }),
      }),
    ]);
  });

  test('socket 0600 in a 0700 directory; unknown session 404, sessionless GET 400, other paths 404, beyond the session cap 503', async () => {
    const b = await start({}, { maxSessions: 1 });
    dispatcher = new Agent({ connect: { socketPath: b.socketPath } });
    expect(statSync(b.socketPath).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(b.socketPath)).mode & 0o777).toBe(0o700);

    const unknown = await post(b, { jsonrpc: '2.0', id: 1, method: 'ping' }, { 'mcp-session-id': 'no-such-session' });
    expect([unknown.statusCode, (await unknown.body.json()) as any]).toEqual([
      404,
      expect.objectContaining({ error: expect.objectContaining({ code: -32001 }) }),
    ]);
    const get = await request(`http://localhost${b.path}`, { dispatcher, method: 'GET', headers: { accept: 'text/event-stream' } });
    expect(get.statusCode).toBe(400);
    await get.body.text();
    const elsewhere = await request(`http://localhost/other`, { dispatcher, method: 'GET' });
    expect(elsewhere.statusCode).toBe(404);
    await elsewhere.body.text();
    const notInit = await post(b, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(notInit.statusCode).toBe(400);
    await notInit.body.text();

    const first = await post(b, initialize(1));
    expect(first.statusCode).toBe(200);
    expect(first.headers['mcp-session-id']).toEqual(expect.any(String));
    await first.body.text();
    const second = await post(b, initialize(2));
    expect(second.statusCode).toBe(503);
    expect(await second.body.json()).toEqual({
      jsonrpc: '2.0',
      id: 2,
      error: { code: -32603, message: 'the stdio server has reached its limit of 1 sessions' },
    });
    expect(b.pids()).toHaveLength(1);
  });

  test('a POST stream cut short resumes on GET with Last-Event-ID: progress and the result arrive', async () => {
    const b = await start();
    dispatcher = new Agent({ connect: { socketPath: b.socketPath } });
    const headers = await rawSession(b);

    const call = await post(
      b,
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 2 }, _meta: { progressToken: 'p-1' } },
      },
      headers,
    );
    expect(call.headers['content-type']).toContain('text/event-stream');
    // Read up to the priming event (an id, no data), then drop the connection.
    let seen = '';
    for await (const chunk of call.body) {
      seen += String(chunk);
      if (/^id: .+$/m.test(seen)) break;
    }
    const lastEventId = /^id: (.+)$/m.exec(seen)![1];
    call.body.destroy();
    await new Promise((r) => setTimeout(r, 700));

    const resumed = await request(`http://localhost${b.path}`, {
      dispatcher,
      method: 'GET',
      headers: { ...headers, accept: 'text/event-stream', 'last-event-id': lastEventId },
    });
    expect(resumed.statusCode).toBe(200);
    const messages: any[] = [];
    for await (const message of sseMessages(resumed.body)) {
      messages.push(message);
      if (message.id === 2) break;
    }
    expect(messages.filter((m) => m.method === 'notifications/progress').map((m) => [m.params.progressToken, m.params.progress])).toEqual([
      ['p-1', 1],
      ['p-1', 2],
    ]);
    expect(messages.find((m) => m.id === 2).result.content[0].text).toContain('Long running operation completed');
  });
});

test('lines on stdout that are not JSON-RPC are logged and dropped; the session works', async () => {
  const b = await start({ route: 'noisy', command: [process.execPath, NOISY] });
  const { client } = await connect(b);
  clients.push(client);
  expect(text(await client.callTool({ name: 'echo', arguments: { message: 'still fine' } }))).toBe('Echo: still fine');
  const dropped = logs.records.filter((r) => /on stdout.*dropped/.test(r.msg));
  expect(dropped.map((r) => [r.route, r.line])).toEqual([
    ['noisy', 'this is not JSON'],
    ['noisy', '{"hello":"json but not JSON-RPC"}'],
  ]);
});

test('a child that exits before answering initialize fails the initialize and ends the session', async () => {
  const b = await start({ route: 'broken', command: [process.execPath, '-e', 'process.stderr.write("cannot start: no config\\n"); process.exit(3)'] });
  const client = new Client({ name: 'bridge-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`http://localhost${b.path}`), { fetch: socketFetch(b) });
  await expect(client.connect(transport)).rejects.toThrow(/the stdio server exited/);
  await until('the session to close', () => logs.records.some((r) => r.msg === 'stdio server exited before it answered initialize; ending the session'));
  expect(logs.records).toContainEqual(expect.objectContaining({ msg: 'stdio server exited', route: 'broken', code: 3 }));
  expect(logs.records).toContainEqual(expect.objectContaining({ msg: 'stdio server stderr', line: 'cannot start: no config' }));
  expect(logs.records.filter((r) => r.msg === 'restarting stdio server')).toEqual([]);
  expect(b.pids()).toEqual([]);
});

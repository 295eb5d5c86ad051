/**
 * A stdio MCP server that Portcullis runs itself: SDK Client → Portcullis (kind: mcp, command)
 * → the stdio bridge → server-everything over stdio. Policy, filtering, masking and restart
 * work as for a remote server, and the server's secrets live only in its environment.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { keyHash, startTestGateway, type TestGateway } from '../helpers/harness';
import { EVERYTHING, mcpClient } from '../helpers/mcp';

const ALICE = 'k-alice-stdio-0123456789';
const BOB = 'k-bob-stdio-0123456789';
const SERVER_SECRET = 'stdio-server-secret-9d8c7b';
const GATEWAY_CANARY = 'gateway-only-canary-5e4f3a';
const MARKER = `portcullis-stdio-test-${process.pid}`;

const POLICY = `package portcullis

default allow := false

allow if not input.mcp.tool == "get-env"

allow if input.agent.id == "bob"

decision := {"allow": allow, "reasons": ["stdio test policy"]}
`;

let gw: TestGateway;

beforeAll(async () => {
  process.env.PORTCULLIS_TEST_GATEWAY_CANARY = GATEWAY_CANARY;
  gw = await startTestGateway({
    yaml: [
      'listen: 127.0.0.1:0',
      'admin: { enabled: false }',
      'policy: { path: ./policies, watch: false }',
      'audit: { path: ./audit }',
      'agents:',
      `  - { id: alice, key_sha256: "${keyHash(ALICE)}" }`,
      `  - { id: bob, key_sha256: "${keyHash(BOB)}" }`,
      'routes:',
      '  - name: local',
      '    kind: mcp',
      '    prefix: /mcp/local/',
      `    command: ["${process.execPath}", "${EVERYTHING}", stdio]`,
      `    env: { SERVER_TOKEN: { env: STDIO_SERVER_TOKEN }, TEST_MARKER: "${MARKER}" }`,
      '    restart: { initial_delay_ms: 50, max_delay_ms: 400 }',
    ].join('\n'),
    policies: { 'policy.rego': POLICY },
    env: { STDIO_SERVER_TOKEN: SERVER_SECRET },
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  delete process.env.PORTCULLIS_TEST_GATEWAY_CANARY;
});

const url = () => `${gw.gateway.url}/mcp/local/`;

/** PIDs of the server children (found by the marker in their environment). */
function serverPids(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').includes(`TEST_MARKER=${MARKER}`)) pids.push(Number(d));
    } catch {
      /* gone or not ours */
    }
  }
  return pids;
}

test('allowed calls reach the stdio server; get-env is denied in the protocol and hidden from the list', async () => {
  const c = await mcpClient(url(), { agentKey: ALICE });
  try {
    const tools = (await c.client.listTools()).tools.map((t) => t.name);
    expect(tools).toContain('echo');
    expect(tools).not.toContain('get-env');
    const echo = await c.client.callTool({ name: 'echo', arguments: { message: 'over stdio' } });
    expect(JSON.stringify(echo.content)).toContain('over stdio');
    const env = await c.client.callTool({ name: 'get-env', arguments: {} });
    expect(env.isError).toBe(true);
    expect(JSON.stringify(env.content)).not.toContain(SERVER_SECRET);
  } finally {
    await c.close();
  }
});

test("the server's environment holds its own secret (masked in answers) and none of the gateway's variables", async () => {
  const c = await mcpClient(url(), { agentKey: BOB });
  try {
    const env = await c.client.callTool({ name: 'get-env', arguments: {} });
    const text = JSON.stringify(env.content);
    expect(text).toContain('SERVER_TOKEN');
    expect(text).not.toContain(SERVER_SECRET);
    expect(text).toContain('*'.repeat(SERVER_SECRET.length));
    expect(text).not.toContain(GATEWAY_CANARY);
    expect(text).not.toContain('STDIO_SERVER_TOKEN');
  } finally {
    await c.close();
  }
});

test('a killed stdio server is restarted and the same session goes on; its exit is logged', async () => {
  const c = await mcpClient(url(), { agentKey: ALICE });
  try {
    await c.client.callTool({ name: 'echo', arguments: { message: 'before' } });
    const pids = serverPids();
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    let text = '';
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      const r = await c.client.callTool({ name: 'echo', arguments: { message: 'after restart' } }).catch((e: Error) => ({ content: e.message }));
      text = JSON.stringify(r.content);
      if (text.includes('after restart')) break;
      await new Promise((r2) => setTimeout(r2, 100));
    }
    expect(text).toContain('after restart');
    expect(serverPids().some((p) => !pids.includes(p))).toBe(true);
    expect(gw.logs()).toMatch(/exited|restart/i);
  } finally {
    await c.close();
  }
});

test('DELETE ends the session and stops its server; closing the gateway leaves no server behind', async () => {
  const c = await mcpClient(url(), { agentKey: ALICE });
  await c.client.callTool({ name: 'echo', arguments: { message: 'x' } });
  const before = serverPids();
  expect(before.length).toBeGreaterThan(0);
  await c.close();
  const until = Date.now() + 5000;
  while (Date.now() < until && serverPids().length >= before.length) await new Promise((r) => setTimeout(r, 50));
  expect(serverPids().length).toBeLessThan(before.length);
  await gw.close();
  expect(serverPids()).toEqual([]);
});

/**
 * Outbound-only deployment (docs/deployment-outbound.md) with a real reverse tunnel, frp
 * v0.61.1 built by scripts/env.sh (ensure_tunnel). On loopback: a relay (frps) outside; inside,
 * Portcullis on a Unix socket and the tunnel client (frpc) that dials out to the relay and hands
 * each tunnelled connection to that socket (frp's unix_domain_socket plugin); a private MCP
 * server (the SDK's McpServer over Streamable HTTP) behind Portcullis. An SDK client on the relay
 * side reaches the private server only through relay → tunnel → Portcullis: its agent key is
 * checked, the policy decides, the route's credential is attached, the audit trail records it;
 * without the key it is refused and audited; a Host other than the relay's is refused at the
 * edge (PC_BAD_HOST). Neither Portcullis's process nor the tunnel client
 * listens on any TCP port (/proc/net/tcp and `ss -ltnp`).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keyHash, rawRequest, startTestGateway, type TestGateway } from '../helpers/harness';
import { freePort, mcpClient } from '../helpers/mcp';

const FRP_DIR = process.env.PORTCULLIS_FRP_DIR ?? path.join(os.homedir(), '.cache/portcullis/frp-v0.61.1');
const FRPS = path.join(FRP_DIR, 'frps');
const FRPC = path.join(FRP_DIR, 'frpc');
const SKIP =
  process.env.PORTCULLIS_TUNNEL_SKIP ||
  (existsSync(FRPS) && existsSync(FRPC) ? '' : `frp is not built in ${FRP_DIR}: run the tests with npm test (scripts/env.sh ensure_tunnel builds it)`);

const AGENT_KEY = 'k-relay-agent-0123456789';
const PRIVATE_TOKEN = 'private-server-token-5c1d9e';
const TUNNEL_TOKEN = 'tunnel-login-token-8a2f';
const SERVER = path.join(__dirname, '../fixtures/mcp/private-http-server.mjs');

const POLICY = `package portcullis

plumbing := {"initialize", "notifications/initialized", "ping", "tools/list"}

default allow := false

allow if {
	input.agent.id == "relay-agent"
	input.mcp.method in plumbing
}

allow if {
	input.agent.id == "relay-agent"
	input.mcp.kind in {"stream", "terminate", "response"}
}

allow if {
	input.agent.id == "relay-agent"
	input.mcp.method == "tools/call"
	input.mcp.tool == "lookup"
}

reasons := ["granted"] if allow
else := ["no agent identified"] if input.agent == null
else := ["not granted"]

decision := {"allow": allow, "reasons": reasons}
`;

/** A child process and everything it printed. */
interface Proc {
  readonly proc: ChildProcess;
  output(): string;
  close(): Promise<void>;
}

/** Spawns `cmd` and resolves once its output matches `ready`. */
function startProc(cmd: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const handle: Proc = {
    proc,
    output: () => out,
    close: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path.basename(cmd)} did not get ready:\n${out}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(handle);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(cmd)} exited (${code}):\n${out}`));
    });
  });
}

/** A TCP socket from /proc/net/tcp{,6}: local and remote port, state (0A = LISTEN, 01 = ESTABLISHED). */
interface TcpSocket {
  readonly local: string;
  readonly localPort: number;
  readonly remotePort: number;
  readonly state: string;
  readonly inode: string;
}

function tcpTable(): TcpSocket[] {
  const rows: TcpSocket[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      rows.push({
        local: f[1],
        localPort: Number.parseInt(f[1].split(':')[1], 16),
        remotePort: Number.parseInt(f[2].split(':')[1], 16),
        state: f[3],
        inode: f[9],
      });
    }
  }
  return rows;
}

/** The TCP sockets process `pid` holds open. */
function tcpOf(pid: number): TcpSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  return tcpTable().filter((s) => inodes.has(s.inode));
}

/** `ss -ltnpH` lines (listening TCP sockets with their processes), or null without ss. */
function ssListeners(): string[] | null {
  try {
    return execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    return null;
  }
}

// Jest names skipped tests only in verbose mode: say it where every run shows it.
if (SKIP) console.warn(`outbound-tunnel.test.ts is skipped: ${SKIP}`);
const suite = SKIP ? describe.skip : describe;

suite(SKIP ? `outbound tunnel (skipped: ${SKIP})` : 'outbound tunnel: relay → frp client → Unix socket → Portcullis → private MCP server', () => {
  let dir: string;
  let sock: string;
  let server: Proc;
  let serverUrl: string;
  let gw: TestGateway;
  let relay: Proc;
  let tunnel: Proc;
  let relayPort: number;
  let agentPort: number;
  let endpoint: string;

  /** The requests the private server received, as it printed them. */
  const seen = () =>
    server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l).seen as { method: string; headers: Record<string, string> });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-tunnel-'));
    sock = path.join(dir, 'gw.sock');

    // Inside: the private MCP server, which answers only callers presenting its token.
    server = await startProc(process.execPath, [SERVER], /listening on port \d+/, { PRIVATE_TOKEN });
    serverUrl = `http://127.0.0.1:${/listening on port (\d+)/.exec(server.output())![1]}/mcp`;

    // Outside: the relay's two ports, its control port (the tunnel client dials it) and the
    // port agents use. Agents send Host: 127.0.0.1:<agentPort>, the relay's public address, so
    // the Unix listener's allow-list names it (its default there is localhost only).
    relayPort = await freePort();
    agentPort = await freePort();
    endpoint = `http://127.0.0.1:${agentPort}/mcp/private/`;

    // Inside: Portcullis on a Unix socket, its admin listener on another; no TCP at all.
    gw = await startTestGateway({
      dir,
      yaml: [
        'listen: unix:./gw.sock',
        `allowed_hosts: ["127.0.0.1:${agentPort}"]`,
        'admin: { listen: "unix:./admin.sock" }',
        'policy: { path: ./policies, watch: false }',
        'audit: { path: ./audit }',
        'credentials:',
        '  private-token: { type: bearer, env: PRIVATE_TOKEN }',
        'agents:',
        `  - { id: relay-agent, key_sha256: "${keyHash(AGENT_KEY)}" }`,
        'routes:',
        `  - { name: private, kind: mcp, prefix: /mcp/private/, upstream: "${serverUrl}", credential: private-token }`,
      ].join('\n'),
      policies: { 'policy.rego': POLICY },
      env: { PRIVATE_TOKEN },
    });

    writeFileSync(
      path.join(dir, 'frps.toml'),
      [
        'bindAddr = "127.0.0.1"',
        `bindPort = ${relayPort}`,
        'proxyBindAddr = "127.0.0.1"',
        'auth.method = "token"',
        `auth.token = "${TUNNEL_TOKEN}"`,
        `allowPorts = [{ single = ${agentPort} }]`,
      ].join('\n'),
    );
    writeFileSync(
      path.join(dir, 'frpc.toml'),
      [
        'serverAddr = "127.0.0.1"',
        `serverPort = ${relayPort}`,
        'auth.method = "token"',
        `auth.token = "${TUNNEL_TOKEN}"`,
        'loginFailExit = true',
        '',
        '[[proxies]]',
        'name = "portcullis"',
        'type = "tcp"',
        `remotePort = ${agentPort}`,
        '[proxies.plugin]',
        'type = "unix_domain_socket"',
        `unixPath = "${sock}"`,
      ].join('\n'),
    );
    relay = await startProc(FRPS, ['-c', path.join(dir, 'frps.toml')], /frps started successfully/);
    tunnel = await startProc(FRPC, ['-c', path.join(dir, 'frpc.toml')], /\[portcullis\] start proxy success/);
  }, 60_000);

  afterAll(async () => {
    await tunnel?.close();
    await relay?.close();
    await gw?.close();
    await server?.close();
  });

  test('an SDK client on the relay side lists and calls a tool of the private server: identity, policy, credential and audit applied', async () => {
    expect(gw.gateway.url).toBe(`unix:${sock}`);
    const before = seen().length;
    const c = await mcpClient(endpoint, { agentKey: AGENT_KEY });
    try {
      const tools = await c.client.listTools();
      // The server offers lookup and drop-table; the list is filtered by the policy
      // (docs/mcp-list-filtering.md), so the agent sees only what it may call.
      expect(tools.tools.map((t) => t.name)).toEqual(['lookup']);

      const r = await c.client.callTool({ name: 'lookup', arguments: { id: '42' } });
      expect(r.isError).toBeFalsy();
      expect(JSON.stringify(r.content)).toContain('record 42: status=active');

      // The credential reached the private server (it refuses anything else with 401); the
      // agent key did not.
      const got = seen().slice(before);
      expect(got.length).toBeGreaterThan(0);
      for (const s of got) {
        expect(s.headers.authorization).toBe(`Bearer ${PRIVATE_TOKEN}`);
        expect(JSON.stringify(s.headers)).not.toContain(AGENT_KEY);
      }

      const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.mcp?.tool === 'lookup');
      expect(rec).toMatchObject({ decision: 'allow', route: 'private', agent: 'relay-agent', mcp: { method: 'tools/call', tool: 'lookup' } });
      await gw.waitForAudit((x) => x.type === 'outcome' && x.decision_id === rec.decision_id);

      // Calling the hidden tool anyway is refused in-protocol and never forwarded.
      const n = seen().length;
      const denied = await c.client.callTool({ name: 'drop-table', arguments: {} });
      expect(denied.isError).toBe(true);
      expect(JSON.stringify(denied.content)).toContain('not granted');
      expect(seen().length).toBe(n);
      const deny = await gw.waitForAudit((x) => x.type === 'decision' && x.mcp?.tool === 'drop-table');
      expect(deny).toMatchObject({ decision: 'deny', code: 'PC_POLICY_DENIED', agent: 'relay-agent' });
    } finally {
      await c.close();
    }
  });

  test('without the agent key the client is refused through the tunnel, audited, and nothing reaches the private server', async () => {
    const before = seen().length;
    const err = await mcpClient(endpoint).then(
      (c) => c.close().then(() => null),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(seen().length).toBe(before);
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.route === 'private' && x.decision === 'deny' && x.agent == null);
    expect(rec).toMatchObject({ code: 'PC_POLICY_DENIED', reasons: ['no agent identified'], mcp: { method: 'initialize' } });
  });

  test("the edge still checks Host through the tunnel: a name other than the relay's is refused before the policy (PC_BAD_HOST)", async () => {
    const before = seen().length;
    const r = await rawRequest(`http://127.0.0.1:${agentPort}`, {
      method: 'POST',
      path: '/mcp/private/',
      headers: {
        host: 'rebound.attacker.example',
        authorization: `Bearer ${AGENT_KEY}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect({ status: r.status, code: r.headers['x-portcullis-error'] }).toEqual({ status: 403, code: 'PC_BAD_HOST' });
    expect(seen().length).toBe(before);
    await gw.waitForAudit((x) => x.type === 'decision' && x.code === 'PC_BAD_HOST' && x.decision_id === r.headers['x-portcullis-decision-id']);
  });

  test('no TCP listener on the agent path: Portcullis and the tunnel client only hold a Unix socket and an outbound connection', () => {
    // Portcullis (this process) listens on no TCP port.
    expect(tcpOf(process.pid).filter((s) => s.state === '0A')).toEqual([]);
    // The tunnel client listens on none either, and holds an established connection it dialed to the relay.
    const client = tcpOf(tunnel.proc.pid!);
    expect(client.filter((s) => s.state === '0A')).toEqual([]);
    expect(client.some((s) => s.state === '01' && s.remotePort === relayPort)).toBe(true);
    // The only listeners are the relay's (outside) and the private server's (the upstream, not the agent path).
    const relayListens = tcpOf(relay.proc.pid!)
      .filter((s) => s.state === '0A')
      .map((s) => s.localPort)
      .sort();
    expect(relayListens).toEqual([relayPort, agentPort].sort());

    const ss = ssListeners();
    if (ss) {
      const ours = [process.pid, tunnel.proc.pid!];
      expect(ss.filter((l) => ours.some((pid) => l.includes(`pid=${pid},`)))).toEqual([]);
      expect(ss.some((l) => l.includes(`:${agentPort} `) && l.includes(`pid=${relay.proc.pid},`))).toBe(true);
    }
  });
});

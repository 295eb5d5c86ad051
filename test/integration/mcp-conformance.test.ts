/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance server`), run twice in
 * one test: against server-everything directly, and through Portcullis (a `kind: mcp` route to
 * the same server, allow-all policy, no agents). Portcullis is a gateway, not a server: it must
 * not change what a conforming client observes, so both runs must agree check by check — the
 * same checks, in the same order, with the same status (SUCCESS, FAILURE, WARNING, INFO, …).
 * server-everything does not implement the suite's test tools, prompts and resources, so many
 * checks fail in both runs; what matters is that the gateway adds or removes no failure.
 * Checks that differ because Portcullis deliberately refuses something are listed in
 * EXPECTED_DIFFERENCES with the reason, and the test asserts they differ exactly that way.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { startTestGateway, type TestGateway } from '../helpers/harness';
import { startEverything, type EverythingServer } from '../helpers/mcp';

/** The conformance CLI (an ESM script run by node). */
const CONFORMANCE = path.join(__dirname, '../../node_modules/@modelcontextprotocol/conformance/dist/index.js');
/** Upper bound of one suite run; a full run takes about 3 s. */
const RUN_TIMEOUT_MS = 60_000;

const ALLOW_ALL = 'package portcullis\n\ndecision := {"allow": true, "reasons": ["allow-all"]}\n';

/** One check as the suite records it in checks.json. */
interface Check {
  readonly id: string;
  readonly status: string;
  readonly errorMessage?: string;
}

/** scenario → its checks in order. */
type Results = Map<string, Check[]>;

/**
 * A check that differs on purpose through Portcullis. `direct` and `through` are its outcome in
 * each run as outcomeLines writes it after the check id: `STATUS` or `STATUS (error message)`.
 */
interface ExpectedDifference {
  readonly scenario: string;
  readonly check: string;
  readonly direct: string;
  readonly through: string;
  readonly reason: string;
}

/** Checks whose outcome Portcullis changes deliberately, with why. Empty means: none. */
const EXPECTED_DIFFERENCES: readonly ExpectedDifference[] = [
  {
    scenario: 'dns-rebinding-protection',
    check: 'localhost-host-rebinding-rejected',
    direct: 'FAILURE (Expected HTTP 4xx for invalid Host/Origin headers, got 200)',
    through: 'SUCCESS',
    reason: 'server-everything accepts any Host; the gateway refuses a Host or Origin that is not its own (G20, PC_BAD_HOST)',
  },
];

/**
 * A gateway with one `kind: mcp` route `name` at /mcp/<name>/ to `upstream`, the allow-all
 * policy and no agents (so the policy sees agent null and no Authorization is needed).
 */
function allowAllGateway(name: string, upstream: string): Promise<TestGateway> {
  return startTestGateway({
    yaml: [
      'listen: 127.0.0.1:0',
      'admin: { enabled: false }',
      'policy: { path: ./policies, watch: false }',
      'audit: { path: ./audit }',
      'routes:',
      `  - { name: ${name}, kind: mcp, prefix: /mcp/${name}/, upstream: "${upstream}" }`,
    ].join('\n'),
    policies: { 'policy.rego': ALLOW_ALL },
  });
}

let everything: EverythingServer;
let gw: TestGateway;

beforeAll(async () => {
  everything = await startEverything();
  gw = await allowAllGateway('everything', everything.url);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await everything?.close();
});

/** Runs a conformance CLI command; resolves with its exit code and output (a failing check exits 1). */
function conformance(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CONFORMANCE, ...args], { timeout: RUN_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const out = stdout + stderr;
      if (err && typeof err.code !== 'number') return reject(new Error(`conformance ${args.join(' ')} did not finish (${err.signal ?? err.message}):\n${out}`));
      resolve({ code: err ? (err.code as number) : 0, out });
    });
  });
}

/** The server scenarios the suite knows (active and pending), from `conformance list --server`. */
async function listedScenarios(): Promise<string[]> {
  const { code, out } = await conformance(['list', '--server']);
  expect(code).toBe(0);
  return [...out.matchAll(/^\s*- ([a-z0-9-]+)/gm)].map((m) => m[1]).sort();
}

/** Runs the server scenarios `select` picks (default: all) against `url` and reads the checks.json of each. */
async function runSuite(url: string, select = ['--suite', 'all']): Promise<{ results: Results; out: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-conformance-'));
  const { out } = await conformance(['server', '--url', url, ...select, '--output-dir', dir]);
  const results: Results = new Map();
  for (const entry of readdirSync(dir)) {
    const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[0-9-]+Z$/.exec(entry);
    const file = path.join(dir, entry, 'checks.json');
    if (!m || !existsSync(file)) continue;
    const checks = JSON.parse(readFileSync(file, 'utf8')) as Check[];
    // The URL under test is the one thing the two runs may legitimately word differently.
    results.set(
      m[1],
      checks.map((c) => ({ id: c.id, status: c.status, errorMessage: c.errorMessage?.split(url).join('<url>') })),
    );
  }
  rmSync(dir, { recursive: true, force: true });
  return { results, out };
}

/**
 * One line per check, `scenario / check: STATUS (error message)`, in run order: what the two
 * runs must share. The message matters because server-everything lacks most of the suite's
 * test tools: a check that fails in both runs must fail for the same reason (the server's own
 * "not found"), not because the gateway broke the exchange on the way.
 */
function outcomeLines(results: Results): string[] {
  return [...results.keys()].sort().flatMap((s) => results.get(s)!.map((c) => `${s} / ${c.id}: ${c.status}${c.errorMessage ? ` (${c.errorMessage})` : ''}`));
}

/** Applies the expected differences to the direct run's outcome: what the gateway run must show. */
function expectedThrough(direct: Results): string[] {
  const lines = outcomeLines(direct);
  for (const d of EXPECTED_DIFFERENCES) {
    const i = lines.indexOf(`${d.scenario} / ${d.check}: ${d.direct}`);
    if (i === -1) throw new Error(`expected difference ${d.scenario} / ${d.check} does not match the direct run (${d.direct})`);
    lines[i] = `${d.scenario} / ${d.check}: ${d.through}`;
  }
  return lines;
}

test('the conformance suite gives the same result, check by check, directly and through Portcullis', async () => {
  const scenarios = await listedScenarios();
  expect(scenarios.length).toBeGreaterThan(20);

  const direct = await runSuite(everything.url);
  const through = await runSuite(`${gw.gateway.url}/mcp/everything/`);

  // Both runs covered every scenario the suite lists (a crashed run would leave some out).
  expect({ scenarios: [...direct.results.keys()].sort(), out: direct.out }).toEqual({ scenarios, out: direct.out });
  expect({ scenarios: [...through.results.keys()].sort(), out: through.out }).toEqual({ scenarios, out: through.out });

  // The direct run is real: some checks pass against server-everything.
  const directLines = outcomeLines(direct.results);
  expect(directLines.filter((l) => l.endsWith(': SUCCESS')).length).toBeGreaterThan(10);

  expect(outcomeLines(through.results)).toEqual(expectedThrough(direct.results));

  // The gateway judged and audited the calls: one allowed decision per forwarded message, and
  // the one refusal is the rebinding probe's (G20).
  const decisions = gw.audit().filter((r) => r.type === 'decision' && r.route === 'everything');
  expect(decisions.length).toBeGreaterThan(scenarios.length);
  expect(decisions.filter((r) => r.decision !== 'allow').map((r) => [r.code, r.reasons])).toEqual([
    ['PC_BAD_HOST', ['Host "evil.example.com" is not allowed']],
  ]);
}, 120_000);

/**
 * The SDK's own Express app on 127.0.0.1 refuses a request whose Host is not a loopback name
 * (DNS-rebinding protection; the suite sends `Host: evil.example.com` and `Origin:
 * http://evil.example.com`). Portcullis forwards with the upstream's own Host, so the upstream's
 * check never sees the hostile name: the gateway's listener must refuse it itself (G20,
 * src/edge/allow-list.ts), and it does, with the same result as the server directly.
 */
describe('dns-rebinding-protection against a server that protects itself', () => {
  const select = ['--scenario', 'dns-rebinding-protection'];
  let server: Server;
  let url: string;
  let protectedGw: TestGateway;
  let direct: string[];

  beforeAll(async () => {
    const app = createMcpExpressApp();
    app.post('/mcp', async (req, res) => {
      // Stateless: one server and transport per request, as the SDK documents.
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await new McpServer({ name: 'protected', version: '1.0.0' }).connect(transport);
      await transport.handleRequest(req, res, req.body);
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    protectedGw = await allowAllGateway('protected', url);
    direct = outcomeLines((await runSuite(url, select)).results);
  }, 60_000);

  afterAll(async () => {
    await protectedGw?.close();
    if (server) await new Promise((resolve) => server.close(resolve));
  });

  test('directly, the SDK server refuses a hostile Host (the reference for the next test)', () => {
    expect(direct).toEqual([
      'dns-rebinding-protection / localhost-host-rebinding-rejected: SUCCESS',
      'dns-rebinding-protection / localhost-host-valid-accepted: SUCCESS',
    ]);
  });

  test('G20: through Portcullis it is refused too: the gateway checks Host and Origin on its own listener', async () => {
    const through = outcomeLines((await runSuite(`${protectedGw.gateway.url}/mcp/protected/`, select)).results);
    expect(through).toEqual(direct);
  }, 60_000);
});

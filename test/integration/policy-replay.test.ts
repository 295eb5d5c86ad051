/**
 * `portcullis policy replay` on a trail a real gateway wrote (REST and MCP calls, a route that
 * keeps bodies, masked MCP arguments), with candidates compiled by the real OPA: the enforcing
 * policy replayed on its own trail changes nothing (the invariant that catches a wrong input
 * rebuild); a tightened or loosened one reports exactly the calls that flip; a candidate that
 * reads what was not recorded is undeterminable, never guessed; filters select as `audit query`.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runQuery } from '../../src/audit/offline/query';
import { main } from '../../src/cli/main';
import type { ReplayGroup, ReplayReport } from '../../src/policy/replay/report';
import { OPA, keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const BOT = 'replay-bot-key';
const EVE = 'replay-eve-key';

const ENFORCING = `package portcullis

default decision := {"allow": false, "reasons": ["not allowed"]}

decision := {"allow": true, "reasons": ["rest open"], "mask": ["/card"]} if {
	input.route in {"up", "kept"}
	input.request.method in {"GET", "POST"}
	not startswith(input.request.path, "/admin")
}

decision := {"allow": true, "reasons": ["tool granted"], "mask": ["/arguments/secret"]} if {
	input.route == "tools"
	input.mcp.method == "tools/call"
	input.mcp.tool in {"echo", "lookup"}
}

decision := {"allow": true, "reasons": ["plumbing"]} if {
	input.route == "tools"
	input.mcp.method != "tools/call"
}
`;

/** The enforcing policy with one more deny rule in front: `deny_reason` when `cond` holds. */
function tightened(cond: string, reason: string): string {
  return `package portcullis

default base := {"allow": false, "reasons": ["not allowed"]}

base := {"allow": true, "reasons": ["rest open"], "mask": ["/card"]} if {
	input.route in {"up", "kept"}
	input.request.method in {"GET", "POST"}
	not startswith(input.request.path, "/admin")
}

base := {"allow": true, "reasons": ["tool granted"], "mask": ["/arguments/secret"]} if {
	input.route == "tools"
	input.mcp.method == "tools/call"
	input.mcp.tool in {"echo", "lookup"}
}

base := {"allow": true, "reasons": ["plumbing"]} if {
	input.route == "tools"
	input.mcp.method != "tools/call"
}

denied if {
	${cond}
}

decision := {"allow": false, "reasons": [${JSON.stringify(reason)}]} if denied
else := base
`;
}

const LOOSENED = `package portcullis

default decision := {"allow": false, "reasons": ["candidate: not allowed"]}

decision := {"allow": true, "reasons": ["candidate: rest open"]} if {
	input.route in {"up", "kept"}
	not startswith(input.request.path, "/admin")
}

decision := {"allow": true, "reasons": ["candidate: tools open"]} if input.route == "tools"
`;

let upstream: Upstream;
let gw: TestGateway;
let trail: string;
const work = mkdtempSync(path.join(os.tmpdir(), 'portcullis-replay-'));
/** Decision ids by call name. */
const ids: Record<string, string> = {};
let midTime = '';

function candidate(name: string, rego: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'p.rego'), rego);
  return dir;
}

/** Runs the command in this process (the CLI's main); returns its exit code and what it printed. */
async function replay(args: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  });
  try {
    const code = await main(['policy', 'replay', ...args]);
    return { code, stdout };
  } finally {
    spy.mockRestore();
  }
}

async function report(policy: string, ...more: string[]): Promise<ReplayReport & { code: number }> {
  const r = await replay(['--policy', policy, '--trail', trail, '--format', 'json', '--examples', '10', ...more]);
  return { ...(JSON.parse(r.stdout) as ReplayReport), code: r.code };
}

const idsOf = (groups: readonly ReplayGroup[]) => groups.flatMap((g) => g.examples).sort();

beforeAll(async () => {
  upstream = await startUpstream((_req, res, body) => {
    const msg = body.length && body[0] === 0x7b ? JSON.parse(body.toString()) : null;
    const text = JSON.stringify(msg?.jsonrpc ? { jsonrpc: '2.0', id: msg.id, result: {} } : { ok: true });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  gw = await startTestGateway({
    yaml: [
      'listen: 127.0.0.1:0',
      'admin: { enabled: false }',
      'policy: { path: ./policies, watch: false }',
      'audit: { path: ./audit, durability: relaxed }',
      'agents:',
      `  - { id: bot, key_sha256: "${keyHash(BOT)}" }`,
      `  - { id: eve, key_sha256: "${keyHash(EVE)}" }`,
      'routes:',
      `  - { name: up, prefix: /up/, upstream: "${upstream.url}/" }`,
      `  - { name: kept, prefix: /kept/, upstream: "${upstream.url}/", audit_body: true }`,
      `  - { name: tools, kind: mcp, prefix: /mcp/tools/, upstream: "${upstream.url}/mcp" }`,
      `  - { name: dry, prefix: /dry/, upstream: "${upstream.url}/", mode: dry_run }`,
    ].join('\n'),
    policies: { 'p.rego': ENFORCING },
  });
  trail = gw.auditDir;
  const rest = async (name: string, key: string, method: string, p: string, body?: unknown) => {
    const r = await rawRequest(gw.gateway.url, {
      method,
      path: p,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    ids[name] = r.headers['x-portcullis-decision-id'] as string;
    return r.status;
  };
  let rpc = 0;
  const mcp = async (name: string, key: string, method: string, params?: unknown) => {
    const id = ++rpc;
    await rawRequest(gw.gateway.url, {
      method: 'POST',
      path: '/mcp/tools/',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id, method, ...(params !== undefined ? { params } : {}) }),
    });
    const rec = await gw.waitForAudit((r) => r.type === 'decision' && r.mcp?.id === id);
    ids[name] = rec.decision_id;
  };
  expect(await rest('get', BOT, 'GET', '/up/items')).toBe(200);
  expect(await rest('post', BOT, 'POST', '/up/items', { note: 'n1' })).toBe(200);
  expect(await rest('delete', BOT, 'DELETE', '/up/items')).toBe(403);
  expect(await rest('admin', EVE, 'GET', '/up/admin/x')).toBe(403);
  expect(await rest('reports', EVE, 'GET', '/up/reports')).toBe(200);
  await new Promise((r) => setTimeout(r, 30));
  midTime = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 30));
  expect(await rest('keptCard', BOT, 'POST', '/kept/items', { note: 'hello', card: '4111' })).toBe(200);
  expect(await rest('keptBig', BOT, 'POST', '/kept/items', { note: 'big' })).toBe(200);
  expect(await rest('unknown', 'not-a-key', 'GET', '/up/items')).toBe(401);
  expect(await rest('dry', BOT, 'GET', '/dry/x')).toBe(200); // denied by the policy, forwarded: dry run
  await mcp('echo', BOT, 'tools/call', { name: 'echo', arguments: { message: 'hi', secret: 's3' } });
  await mcp('getEnv', BOT, 'tools/call', { name: 'get-env', arguments: {} });
  await mcp('list', BOT, 'tools/list');
  await mcp('lookup', EVE, 'tools/call', { name: 'lookup', arguments: { id: 42 } });
  await gw.close();
  // The trail holds what the test expects: inputs, omissions, masks.
  const recs = gw.audit().filter((r) => r.type === 'decision');
  const byId = (n: string) => recs.find((r) => r.decision_id === ids[n])!;
  expect(byId('post').input_omitted).toEqual(['/request/body']);
  expect(byId('keptCard').input_omitted).toEqual(['/request/body/card']);
  expect(byId('keptBig').input_omitted).toBeUndefined();
  expect(byId('echo').input_omitted).toEqual(['/request/body', '/mcp/arguments/secret']);
  expect(byId('echo').mcp.arguments).toEqual({ message: 'hi', secret: '[masked]' });
  expect(byId('getEnv').code).toBe('PC_POLICY_DENIED');
  expect(byId('unknown').input).toBeUndefined();
  expect(byId('dry')).toMatchObject({ decision: 'deny', code: 'PC_POLICY_DENIED', enforced: false });
}, 60_000);

afterAll(async () => {
  await upstream?.close();
});

const ALL_JUDGED = ['get', 'post', 'delete', 'admin', 'reports', 'keptCard', 'keptBig', 'dry', 'echo', 'getEnv', 'list', 'lookup'];

test('G32: self-replay: the enforcing policy on its own trail changes nothing and can decide every record', async () => {
  const r = await report(gw.policyDir);
  expect(r.totals).toEqual({
    records: ALL_JUDGED.length + 1,
    judged: ALL_JUDGED.length,
    unchanged: ALL_JUDGED.length,
    newly_denied: 0,
    newly_allowed: 0,
    undeterminable: 0,
    skipped: 1,
  });
  expect(r.candidate.reads).toEqual(['input.mcp.method', 'input.mcp.tool', 'input.request.method', 'input.request.path', 'input.route']);
  expect(r.code).toBe(0);
});

test('a tightened candidate reports exactly the calls it would now deny, grouped by route, agent, tool and its reasons', async () => {
  const dir = candidate(
    'tight',
    tightened('input.route == "up"\n\tinput.request.method == "POST"', 'candidate: no writes on up').replace(
      'denied if {',
      'denied if {\n\tinput.mcp.tool == "lookup"\n\tinput.agent.id == "eve"\n}\n\ndenied if {',
    ),
  );
  const r = await report(dir, '--fail-on', 'newly-allowed');
  expect(r.totals).toMatchObject({ newly_denied: 2, newly_allowed: 0, undeterminable: 0, unchanged: ALL_JUDGED.length - 2 });
  expect(r.newly_denied).toEqual([
    { route: 'tools', agent: 'eve', tool: 'lookup', reasons: ['candidate: no writes on up'], count: 1, examples: [ids.lookup] },
    { route: 'up', agent: 'bot', tool: '-', reasons: ['candidate: no writes on up'], count: 1, examples: [ids.post] },
  ]);
  expect(r.code).toBe(0);
  expect(r.failed).toBe(false);
  expect((await report(dir, '--fail-on', 'newly-denied')).code).toBe(1);
});

test('a loosened candidate reports the newly allowed with their recorded reasons; --fail-on newly-allowed exits 1', async () => {
  const dir = candidate('loose', LOOSENED);
  const r = await report(dir, '--fail-on', 'newly-allowed');
  expect(r.totals).toMatchObject({ newly_denied: 0, newly_allowed: 2, undeterminable: 0 });
  expect(idsOf(r.newly_allowed)).toEqual([ids.delete, ids.getEnv].sort());
  expect(r.newly_allowed).toContainEqual({ route: 'up', agent: 'bot', tool: '-', reasons: ['not allowed'], count: 1, examples: [ids.delete] });
  expect(r.newly_allowed).toContainEqual({ route: 'tools', agent: 'bot', tool: 'get-env', reasons: ['not allowed'], count: 1, examples: [ids.getEnv] });
  expect(r.code).toBe(1);
  expect(r.failed).toBe(true);
  expect((await report(dir, '--fail-on', 'any')).code).toBe(1);
  expect((await report(dir)).code).toBe(0);
});

test('a dry-run record keeps the policy verdict: a candidate that allows the call flips it to newly allowed', async () => {
  const r = await report(candidate('open', 'package portcullis\n\ndecision := {"allow": true, "reasons": ["open"]}\n'));
  expect(idsOf(r.newly_allowed)).toEqual([ids.delete, ids.admin, ids.dry, ids.getEnv].sort());
  expect(r.candidate.reads).toEqual([]);
  expect(r.totals).toMatchObject({ undeterminable: 0, newly_denied: 0 });
});

test('progress goes to stderr when it is a terminal, and never into the JSON on stdout', async () => {
  const had = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
  Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
  let err = '';
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += chunk.toString();
    return true;
  });
  try {
    const r = await replay(['--policy', gw.policyDir, '--trail', trail, '--format', 'json']);
    expect(JSON.parse(r.stdout).totals.records).toBe(ALL_JUDGED.length + 1);
    expect(err).toMatch(/replayed \d+ records \(\d+\/s\), [\d.]+\/[\d.]+ MiB/);
  } finally {
    spy.mockRestore();
    if (had) Object.defineProperty(process.stderr, 'isTTY', had);
    else delete (process.stderr as { isTTY?: boolean }).isTTY;
  }
});

test('G32: a candidate reading the body: undeterminable where it was not recorded, decided on the audit_body route', async () => {
  const dir = candidate('body', tightened('input.request.body.note == "big"', 'candidate: no big notes'));
  const r = await report(dir, '--fail-on', 'undeterminable');
  // The REST POST on `up` (body not kept) and every MCP call (the JSON-RPC message is never kept).
  const undecided = ['post', 'echo', 'getEnv', 'list', 'lookup'];
  expect(r.totals).toMatchObject({ undeterminable: undecided.length, newly_denied: 1, newly_allowed: 0 });
  expect(idsOf(r.undeterminable)).toEqual(undecided.map((n) => ids[n]).sort());
  expect(r.undeterminable[0].reasons[0]).toBe('the candidate reads input.request.body.note; the record omits /request/body');
  // On `kept` the body is there (its card masked, not read): keptBig flips, keptCard does not.
  expect(r.newly_denied).toEqual([{ route: 'kept', agent: 'bot', tool: '-', reasons: ['candidate: no big notes'], count: 1, examples: [ids.keptBig] }]);
  expect(r.code).toBe(1);
  // Reading the masked card on `kept` is undeterminable there.
  const card = await report(candidate('card', tightened('input.request.body.card == "4111"', 'candidate: no cards')), '--route', 'kept');
  expect(idsOf(card.undeterminable)).toEqual([ids.keptCard]);
  expect(card.totals).toMatchObject({ records: 2, undeterminable: 1, unchanged: 1 });
});

test('G32: a candidate reading a masked MCP argument is undeterminable on that call; an unmasked argument is decided', async () => {
  const masked = await report(candidate('secret', tightened('input.mcp.arguments.secret == "s3"', 'candidate: no s3')));
  expect(idsOf(masked.undeterminable)).toEqual([ids.echo]);
  expect(masked.undeterminable[0].reasons).toEqual(['the candidate reads input.mcp.arguments.secret; the record omits /mcp/arguments/secret']);
  expect(masked.totals).toMatchObject({ undeterminable: 1, newly_denied: 0, newly_allowed: 0 });
  const plain = await report(candidate('message', tightened('input.mcp.arguments.message == "hi"', 'candidate: no hi')));
  expect(plain.totals).toMatchObject({ undeterminable: 0, newly_denied: 1 });
  expect(plain.newly_denied).toEqual([{ route: 'tools', agent: 'bot', tool: 'echo', reasons: ['candidate: no hi'], count: 1, examples: [ids.echo] }]);
  // Arguments absent from the call are null in the rebuilt input, as the policy saw them.
  const nulls = await report(candidate('nulls', tightened('input.mcp.method == "tools/list"\n\tinput.mcp.arguments == null', 'candidate: null')));
  expect(nulls.newly_denied.flatMap((g) => g.examples)).toEqual([ids.list]);
});

test('G32: time.now_ns makes every judged record undeterminable, with that reason', async () => {
  const r = await report(candidate('time', tightened('time.now_ns() < 0', 'candidate: never')));
  expect(r.totals).toMatchObject({ judged: ALL_JUDGED.length, undeterminable: ALL_JUDGED.length, unchanged: 0 });
  expect(r.candidate.nondeterministic).toEqual(['time.now_ns']);
  expect(r.undeterminable.every((g) => g.reasons[0].includes('time.now_ns'))).toBe(true);
  expect(r.notes.join('\n')).toContain('time.now_ns');
});

test('--route, --agent, --tool, --since and --until select the records `audit query` selects', async () => {
  const cases: [string[], Parameters<typeof runQuery>[1]][] = [
    [['--route', 'up'], { routes: ['up'] }],
    [['--agent', 'eve'], { agents: ['eve'] }],
    [['--tool', 'echo', '--tool', 'lookup'], { tools: ['echo', 'lookup'] }],
    [['--since', midTime], { since: Date.parse(midTime) }],
    [['--until', midTime], { until: Date.parse(midTime) }],
  ];
  for (const [args, filter] of cases) {
    const r = await report(gw.policyDir, ...args);
    const expected: string[] = [];
    runQuery(trail, filter, {}, (hit) => expected.push(hit.record.decision_id as string));
    expect({ args, records: r.totals.records }).toEqual({ args, records: expected.length });
    expect(expected.length).toBeGreaterThan(0);
  }
  // The loosened candidate, eve only: nothing she did flips (her admin call stays denied).
  const eve = await report(candidate('loose', LOOSENED), '--agent', 'eve');
  expect(eve.totals).toMatchObject({ records: 3, newly_allowed: 0 });
  const bot = await report(candidate('loose', LOOSENED), '--agent', 'bot', '--route', 'up');
  expect(idsOf(bot.newly_allowed)).toEqual([ids.delete]);
});

test('usage errors exit 2; a candidate that does not compile exits 4', async () => {
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect((await replay(['--policy', gw.policyDir])).code).toBe(2);
    expect((await replay(['--policy', gw.policyDir, '--trail', trail, '--fail-on', 'sometimes'])).code).toBe(2);
    expect((await replay(['--policy', gw.policyDir, '--trail', trail, '--format', 'yaml'])).code).toBe(2);
    expect((await replay(['--policy', gw.policyDir, '--trail', trail, '--since', 'yesterday'])).code).toBe(2);
    expect((await replay(['--policy', gw.policyDir, '--trail', path.join(work, 'no-such-trail')])).code).toBe(2);
    const bad = candidate('bad', 'package portcullis\n\ndecision := {"allow": nope}\n');
    expect((await replay(['--policy', bad, '--trail', trail])).code).toBe(4);
    expect(stderr.mock.calls.join('')).toContain('does not compile');
  } finally {
    stderr.mockRestore();
  }
});

test('the built CLI: text by default, JSON with the documented fields, exit codes', async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first`);
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'policy', 'replay', ...args], { env: { ...process.env, PORTCULLIS_OPA: OPA } }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const loose = path.join(work, 'loose');
  const text = await run(['-p', loose, '-t', trail]);
  expect(text.code).toBe(0);
  expect(text.stdout).toContain('newly allowed');
  expect(text.stdout).toContain(ids.delete);
  expect(text.stderr).toBe(''); // not a terminal: no progress
  const json = await run(['-p', loose, '-t', trail, '--format', 'json', '--fail-on', 'newly-allowed,undeterminable']);
  expect(json.code).toBe(1);
  const doc = JSON.parse(json.stdout);
  expect(Object.keys(doc).sort()).toEqual(
    ['candidate', 'fail_on', 'failed', 'newly_allowed', 'newly_denied', 'notes', 'totals', 'trail', 'undeterminable', 'unreadable'].sort(),
  );
  expect(Object.keys(doc.candidate).sort()).toEqual(['entrypoint', 'nondeterministic', 'path', 'reads', 'revision', 'sources']);
  expect(Object.keys(doc.totals).sort()).toEqual(['judged', 'newly_allowed', 'newly_denied', 'records', 'skipped', 'unchanged', 'undeterminable']);
  expect(doc.fail_on).toEqual(['newly-allowed', 'undeterminable']);
  expect((await run(['-p', path.join(work, 'bad'), '-t', trail])).code).toBe(4);
  expect((await run(['-t', trail, '-p', loose, '--bogus'])).code).toBe(2);
});

test('G32: a Wasm bundle: its sources are not known, so every record that omits something is undeterminable', async () => {
  const bundle = path.join(work, 'enforcing.tar.gz');
  await new Promise<void>((resolve, reject) =>
    execFile(OPA, ['build', '-t', 'wasm', '-e', 'portcullis/decision', '-o', bundle, '.'], { cwd: gw.policyDir }, (err) => (err ? reject(err) : resolve())),
  );
  const r = await report(bundle);
  expect(r.candidate.sources).toBe('wasm');
  expect(r.candidate.reads).toBeNull();
  // Every record with input_omitted: the REST POSTs' bodies, the card, every MCP call.
  expect(idsOf(r.undeterminable)).toEqual(['post', 'keptCard', 'echo', 'getEnv', 'list', 'lookup'].map((n) => ids[n]).sort());
  expect(r.totals).toMatchObject({ unchanged: ALL_JUDGED.length - 6, newly_denied: 0, newly_allowed: 0 });
  expect(r.notes.join('\n')).toContain('Wasm bundle');
});

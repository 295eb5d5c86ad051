/**
 * Shadow policies and dry-run routes through the real compiler and a running gateway: the
 * shadow's verdict is in the same decision record and never changes a call; a dry-run route
 * forwards what the policy denies, with its credential, and says so everywhere.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { startGateway } from '../../src/gateway';
import { createLogger } from '../../src/observability/logger';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'shadow-test-key';
const TOKEN = 'dry-run-upstream-token-7f3a';
const auth = { authorization: `Bearer ${KEY}` };
let upstream: Upstream;

// Enforcing: allows the up route except /up/blocked; denies everything on the dry route.
const ENFORCING = `package portcullis

default decision := {"allow": false, "reasons": ["not allowed"]}

decision := {"allow": true, "reasons": ["up is open"]} if {
	input.route == "up"
	not startswith(input.request.path, "/blocked")
}
`;
// Shadow (the candidate): tighter on /up/secret, looser on /up/blocked.
const SHADOW = `package portcullis

default decision := {"allow": false, "reasons": ["candidate: not allowed"]}

decision := {"allow": true, "reasons": ["candidate: up is open"]} if {
	input.route == "up"
	not startswith(input.request.path, "/secret")
}
`;

function yaml(up: string, extra: { shadow?: string; dryShadow?: string } = {}): string {
  return [
    'listen: 127.0.0.1:0',
    'admin: { listen: 127.0.0.1:0 }',
    `policy: { path: ./policies, watch: true, poll_ms: 200${extra.shadow ?? ', shadow: { path: ./shadow, watch: true, poll_ms: 200 }'} }`,
    'audit: { path: ./audit, durability: relaxed }',
    `agents:\n  - id: bot\n    key_sha256: "${keyHash(KEY)}"`,
    'credentials:\n  tok: { type: bearer, env: DRY_RUN_TOKEN }',
    'routes:',
    `  - name: up\n    prefix: /up/\n    upstream: ${up}/`,
    `  - name: dry\n    prefix: /dry/\n    upstream: ${up}/\n    credential: tok\n    mode: dry_run${extra.dryShadow ?? ''}`,
  ].join('\n');
}

beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(() => upstream.close());

async function until(pred: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a shadow policy beside the enforcing one', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      yaml: yaml(upstream.url),
      policies: { 'p.rego': ENFORCING },
      files: { 'shadow/s.rego': SHADOW },
      env: { DRY_RUN_TOKEN: TOKEN },
    });
  });
  afterAll(() => gw.close());

  const call = async (p: string) => {
    const r = await rawRequest(gw.gateway.url, { path: p, headers: auth });
    const id = r.headers['x-portcullis-decision-id'] as string;
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === id);
    return { status: r.status, rec };
  };

  test('agreeing, the shadow is recorded with its own revision', async () => {
    const { status, rec } = await call('/up/items');
    expect(status).toBe(200);
    expect(rec.decision).toBe('allow');
    expect(rec.shadow).toEqual({ revision: expect.stringMatching(/^sha256:/), allow: true, reasons: ['candidate: up is open'] });
    expect(rec.shadow.revision).not.toBe(rec.policy_revision);
    expect(rec.enforced).toBeUndefined();
  });

  test('G29: a shadow deny never refuses a call the enforcing policy allows', async () => {
    const before = upstream.received.length;
    const { status, rec } = await call('/up/secret/plans');
    expect(status).toBe(200);
    expect(upstream.received.length).toBe(before + 1);
    expect(rec.decision).toBe('allow');
    expect(rec.shadow).toMatchObject({ allow: false, reasons: ['candidate: not allowed'] });
  });

  test('G29: a shadow allow never lets through a call the enforcing policy denies; the deny record carries it', async () => {
    const before = upstream.received.length;
    const { status, rec } = await call('/up/blocked/x');
    expect(status).toBe(403);
    expect(upstream.received.length).toBe(before);
    expect(rec).toMatchObject({ decision: 'deny', code: 'PC_POLICY_DENIED', shadow: { allow: true } });
  });

  test('agreement and disagreement are counted by route', async () => {
    const metrics = (await rawRequest(gw.gateway.adminUrl!, { path: '/metrics' })).body;
    expect(metrics).toMatch(/portcullis_policy_shadow_total\{route="up",agreement="agree"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_policy_shadow_total\{route="up",agreement="disagree"\} [2-9]/);
  });

  test('the shadow reloads on change like the enforcing policy, and a broken change keeps the old shadow', async () => {
    const first = gw.audit().find((x) => x.type === 'policy_loaded' && x.shadow === true)!.revision;
    writeFileSync(path.join(gw.dir, 'shadow/s.rego'), SHADOW.replace('candidate: up is open', 'candidate v2'));
    const loaded = await gw.waitForAudit((x) => x.type === 'policy_loaded' && x.shadow === true && x.previous === first, 8000);
    const { rec } = await call('/up/items');
    expect(rec.shadow).toMatchObject({ revision: loaded.revision, allow: true, reasons: ['candidate v2'] });
    writeFileSync(path.join(gw.dir, 'shadow/s.rego'), 'package portcullis\n\ndecision := {"allow": \n');
    await gw.waitForAudit((x) => x.type === 'policy_rejected' && x.shadow === true, 8000);
    expect((await call('/up/items')).rec.shadow.revision).toBe(loaded.revision);
    // The enforcing policy never moved.
    expect(gw.audit().filter((x) => x.type === 'policy_loaded' && x.shadow !== true)).toHaveLength(1);
  });

  test('a shadow that fails to decide is recorded as an error and the call is unaffected', async () => {
    const shadowLoads = () => gw.audit().filter((x) => x.type === 'policy_loaded' && x.shadow === true).length;
    const loads = shadowLoads();
    writeFileSync(path.join(gw.dir, 'shadow/s.rego'), 'package portcullis\n\ndecision := "not a decision"\n');
    await until(() => shadowLoads() > loads);
    const { status, rec } = await call('/up/items');
    expect(status).toBe(200);
    expect(rec.decision).toBe('allow');
    expect(rec.shadow).toMatchObject({ allow: false, error: expect.stringMatching(/string/) });
  });
});

describe('dry_run: judged and recorded, not enforced', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ yaml: yaml(upstream.url, { shadow: '' }), policies: { 'p.rego': ENFORCING }, env: { DRY_RUN_TOKEN: TOKEN } });
  });
  afterAll(() => gw.close());

  test('G29: a call the policy denies is forwarded with its credential; its record keeps the verdict and says enforced: false', async () => {
    const before = upstream.received.length;
    const r = await rawRequest(gw.gateway.url, { path: '/dry/anything', headers: auth });
    expect(r.status).toBe(200);
    expect(upstream.received.length).toBe(before + 1);
    expect(upstream.received.at(-1)!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    const id = r.headers['x-portcullis-decision-id'] as string;
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.decision_id === id);
    expect(rec).toMatchObject({ decision: 'deny', code: 'PC_POLICY_DENIED', reasons: ['not allowed'], enforced: false, credential: 'tok' });
    expect(rec.status).toBeUndefined();
    await gw.waitForAudit((x) => x.type === 'outcome' && x.decision_id === id);
    // The enforcing route next to it still enforces.
    expect((await rawRequest(gw.gateway.url, { path: '/up/blocked', headers: auth })).status).toBe(403);
  });

  test('G29: refusals that are not the policy still refuse on a dry-run route', async () => {
    const before = upstream.received.length;
    const r = await rawRequest(gw.gateway.url, { path: '/dry/x', headers: { authorization: 'Bearer wrong-key' } });
    expect(r.status).toBe(401);
    expect(upstream.received.length).toBe(before);
  });

  test('G29: it is loud: a start-up warning, /readyz, gateway_start and the metrics say so', async () => {
    expect(gw.logs()).toMatch(/"route":"dry".*dry_run mode: the policy is judged and recorded but NOT enforced/);
    const ready = JSON.parse((await rawRequest(gw.gateway.adminUrl!, { path: '/readyz' })).body);
    expect(ready).toMatchObject({ status: 'ready', dry_run_routes: ['dry'], warnings: [expect.stringMatching(/not enforcing the policy on dry/)] });
    expect(gw.audit().find((x) => x.type === 'gateway_start')).toMatchObject({ dry_run_routes: ['dry'] });
    const metrics = (await rawRequest(gw.gateway.adminUrl!, { path: '/metrics' })).body;
    expect(metrics).toMatch(/portcullis_decisions_total\{route="dry",decision="dry_run_deny",code="PC_POLICY_DENIED"\} [1-9]/);
  });
});

describe('configuration', () => {
  test('a shadow path that does not exist refuses the config, naming the key', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-shadow-'));
    mkdirSync(path.join(dir, 'policies'));
    let err: unknown;
    try {
      parseConfig(yaml('http://127.0.0.1:1', { shadow: ', shadow: { path: ./nowhere }' }), path.join(dir, 'portcullis.yaml'), {
        env: { DRY_RUN_TOKEN: TOKEN },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/portcullis\.yaml:3:\d+: policy\.shadow\.path: .*nowhere does not exist/);
  });

  test('a route shadow_policy overrides policy.shadow, and a shadow that does not compile refuses the start', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-shadow-'));
    mkdirSync(path.join(dir, 'policies'));
    mkdirSync(path.join(dir, 'broken'));
    writeFileSync(path.join(dir, 'policies/p.rego'), ENFORCING);
    writeFileSync(path.join(dir, 'broken/b.rego'), 'package portcullis\n\ndecision := {\n');
    const text = yaml(upstream.url, { shadow: '', dryShadow: '\n    shadow_policy: { path: ./broken }' });
    const config = parseConfig(text, path.join(dir, 'portcullis.yaml'), { env: { DRY_RUN_TOKEN: TOKEN } });
    expect(config.routes.find((r) => r.name === 'dry')!.shadowPolicy!.path).toBe(path.join(dir, 'broken'));
    expect(config.routes.find((r) => r.name === 'up')!.shadowPolicy).toBeNull();
    await expect(startGateway(config, { logger: createLogger('silent') })).rejects.toThrow(/shadow policy .*broken/);
  });
});

describe('dry_run on an MCP route', () => {
  const closeAfter: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of closeAfter) await c();
  });
  test('G29: the list is not filtered and a denied tools/call reaches the server; the enforcing route beside it filters and denies', async () => {
    const { mcpClient, startTicketsServer } = await import('../helpers/mcp');
    const tickets = await startTicketsServer();
    closeAfter.push(() => tickets.close());
    const gw = await startTestGateway({
      yaml: [
        'listen: 127.0.0.1:0',
        'admin: { enabled: false }',
        'policy: { path: ./policies, watch: false }',
        'audit: { path: ./audit, durability: relaxed }',
        `agents:\n  - id: bot\n    key_sha256: "${keyHash(KEY)}"`,
        'routes:',
        `  - name: dry-mcp\n    prefix: /dry-mcp/\n    kind: mcp\n    upstream: ${tickets.url}\n    mode: dry_run`,
        `  - name: enforced-mcp\n    prefix: /enforced-mcp/\n    kind: mcp\n    upstream: ${tickets.url}`,
      ].join('\n'),
      // Denies every tool call and hides every tool; allows the protocol's own messages.
      policies: {
        'p.rego':
          'package portcullis\n\ndefault decision := {"allow": false, "reasons": ["no tools today"]}\n\ndecision := {"allow": true} if input.mcp.method != "tools/call"\n',
      },
    });
    try {
      const runsBefore = tickets.toolRuns();
      const dry = await mcpClient(`${gw.gateway.url}/dry-mcp/`, { agentKey: KEY });
      try {
        expect((await dry.client.listTools()).tools.map((t) => t.name)).toEqual(['lookup']);
        const result = await dry.client.callTool({ name: 'lookup', arguments: {} });
        expect(result.isError).toBeFalsy();
        expect(tickets.toolRuns()).toBe(runsBefore + 1);
      } finally {
        await dry.close();
      }
      const rec = gw.audit().find((r) => r.type === 'decision' && r.route === 'dry-mcp' && r.mcp?.method === 'tools/call')!;
      expect(rec).toMatchObject({ decision: 'deny', code: 'PC_POLICY_DENIED', enforced: false, reasons: ['no tools today'] });
      const enforced = await mcpClient(`${gw.gateway.url}/enforced-mcp/`, { agentKey: KEY });
      try {
        expect((await enforced.client.listTools()).tools).toEqual([]);
        const denied = await enforced.client.callTool({ name: 'lookup', arguments: {} });
        expect(denied.isError).toBe(true);
        expect(tickets.toolRuns()).toBe(runsBefore + 1);
      } finally {
        await enforced.close();
      }
    } finally {
      await gw.close();
    }
  });
});

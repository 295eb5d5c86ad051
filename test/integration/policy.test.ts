/**
 * Policies through the real compiler and the real gateway: hot reload with atomic swap, a bad
 * change keeps the old policy, and every way a policy can fail to decide is a logged deny.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { PolicyBuildError } from '../../src/errors';
import { startGateway } from '../../src/gateway';
import { createLogger } from '../../src/observability/logger';
import { oneRouteYaml, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'policy-test-key';
const auth = { authorization: `Bearer ${KEY}` };
let upstream: Upstream;

const yaml = (up: string, watch = false) => oneRouteYaml({ upstream: up, agentKey: KEY, durability: 'relaxed', watch });

beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(() => upstream.close());

async function until(pred: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('hot reload', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      yaml: yaml(upstream.url, true),
      policies: { 'p.rego': 'package portcullis\n\ndecision := {"allow": true, "reasons": ["v1"]}\n' },
    });
  });
  afterAll(() => gw.close());

  test('a changed policy is recompiled and swapped in; the change is audited', async () => {
    const first = gw.gateway.policy.current.revision;
    expect((await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth })).status).toBe(200);
    writeFileSync(path.join(gw.policyDir, 'p.rego'), 'package portcullis\n\ndecision := {"allow": false, "reasons": ["v2 denies"]}\n');
    await until(() => gw.gateway.policy.current.revision !== first);
    const r = await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error.reasons).toEqual(['v2 denies']);
    const loaded = await gw.waitForAudit((x) => x.type === 'policy_loaded' && x.previous === first);
    expect(loaded.revision).toBe(gw.gateway.policy.current.revision);
  });

  test('a change that does not compile leaves the old policy in force and is reported', async () => {
    const before = gw.gateway.policy.current.revision;
    writeFileSync(path.join(gw.policyDir, 'p.rego'), 'package portcullis\n\ndecision := {"allow": true \n');
    await gw.waitForAudit((x) => x.type === 'policy_rejected', 8000);
    expect(gw.gateway.policy.current.revision).toBe(before);
    expect(gw.logs()).toContain('policy change rejected');
    expect((await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth })).status).toBe(403);
  });
});

describe('G6: a policy that cannot decide denies, and says why', () => {
  test.each([
    ['undefined result', 'package portcullis\n\ndecision := true if input.never_set\n', /undefined/],
    ['a string instead of a decision', 'package portcullis\n\ndecision := "yes"\n', /string/],
    ['a non-boolean allow', 'package portcullis\n\ndecision := {"allow": "true"}\n', /no boolean "allow"/],
    [
      'a runtime error (conflicting values)',
      'package portcullis\n\ndecision := true\ndecision := false if input.route == "up"\n',
      /evaluation failed|conflict/,
    ],
    ['a builtin error at run time', 'package portcullis\n\ndecision := {"allow": time.parse_rfc3339_ns("not a time") > 0}\n', /evaluation failed/],
  ])('%s', async (_name, rego, cause) => {
    const gw = await startTestGateway({ yaml: yaml(upstream.url), policies: { 'p.rego': rego } });
    try {
      const before = upstream.received.length;
      const r = await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth });
      expect(r.status).toBe(403);
      const body = JSON.parse(r.body);
      expect(body.error.code).toBe('PC_POLICY_ERROR');
      expect(body.error.reasons[0]).toMatch(cause);
      expect(upstream.received.length).toBe(before);
      const rec = gw.audit().find((x) => x.decision_id === body.error.decision_id)!;
      expect(rec).toMatchObject({ decision: 'deny', code: 'PC_POLICY_ERROR' });
      expect(rec.reasons[0]).toMatch(cause);
      expect(gw.logs()).toMatch(/policy failed to decide/);
    } finally {
      await gw.close();
    }
  });
});

describe('policies that must not start', () => {
  async function startError(rego: string, entrypoint?: string): Promise<Error> {
    const { mkdtempSync, mkdirSync } = await import('node:fs');
    const os = await import('node:os');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bad-'));
    mkdirSync(path.join(dir, 'policies'));
    writeFileSync(path.join(dir, 'policies', 'p.rego'), rego);
    const text = yaml(upstream.url).replace('policy: { path: ./policies,', `policy: { path: ./policies,${entrypoint ? ` entrypoint: ${entrypoint},` : ''}`);
    const config = parseConfig(text, path.join(dir, 'portcullis.yaml'));
    try {
      const gw = await startGateway(config, { logger: createLogger('silent') });
      await gw.close();
    } catch (err) {
      return err as Error;
    }
    throw new Error('the gateway started');
  }

  test("a syntax error stops start-up with OPA's message", async () => {
    const err = await startError('package portcullis\n\ndecision := {\n');
    expect(err).toBeInstanceOf(PolicyBuildError);
    expect(err.message).toMatch(/does not compile/);
    expect(err.message).toMatch(/p\.rego:\d+/);
  });

  test('a builtin the engine does not provide fails at build, naming it', async () => {
    const err = await startError('package portcullis\n\ndecision := http.send({"method": "get", "url": "http://127.0.0.1:1/"}).status_code == 200\n');
    expect(err).toBeInstanceOf(PolicyBuildError);
    expect(err.message).toMatch(/http\.send/);
  });

  test('a missing entrypoint stops start-up', async () => {
    const err = await startError('package portcullis\n\ndecision := true\n', 'portcullis/verdict');
    expect(err).toBeInstanceOf(PolicyBuildError);
    expect(err.message).toMatch(/verdict/);
  });

  test('a ConfigMap-style mount (hidden ..data copies of each file) compiles', async () => {
    const { mkdtempSync, mkdirSync, symlinkSync } = await import('node:fs');
    const os = await import('node:os');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-cm-'));
    const policies = path.join(dir, 'policies');
    mkdirSync(path.join(policies, '..2026_11_22_12_00_00.1'), { recursive: true });
    writeFileSync(path.join(policies, '..2026_11_22_12_00_00.1', 'p.rego'), 'package portcullis\n\ndefault decision := false\n');
    symlinkSync('..2026_11_22_12_00_00.1', path.join(policies, '..data'));
    symlinkSync('..data/p.rego', path.join(policies, 'p.rego'));
    const config = parseConfig(yaml(upstream.url), path.join(dir, 'portcullis.yaml'));
    const gw = await startGateway(config, { logger: createLogger('silent') });
    expect(gw.policy.current.revision).toMatch(/^sha256:/);
    await gw.close();
  });

  test('the audit directory is released when start-up fails', async () => {
    // A second failure in the same kind of directory would report a stale lock if it were not.
    await expect(startError('package portcullis\n\ndecision := {\n')).resolves.toBeInstanceOf(PolicyBuildError);
  });
});

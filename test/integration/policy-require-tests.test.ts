/**
 * `policy.require_tests: true`: a policy goes into force only if its own *_test.rego pass under
 * the real `opa test`. A failing policy stops start-up with an error naming the failing test;
 * on hot reload it is rejected (policy_rejected) and the old policy stays in force.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { rawRequest, startTestGateway, startUpstream, oneRouteYaml, type Upstream } from '../helpers/harness';

const KEY = 'require-tests-key';
const auth = { authorization: `Bearer ${KEY}` };

const POLICY = (reason: string) => `package portcullis\n\ndecision := {"allow": true, "reasons": ["${reason}"]}\n`;
const TEST = 'package portcullis_test\n\nimport data.portcullis\n\ntest_allows if portcullis.decision.allow\n';
const FAILING_TEST = 'package portcullis_test\n\nimport data.portcullis\n\ntest_denies if not portcullis.decision.allow\n';

const yaml = (upstream: string, watch: boolean) =>
  oneRouteYaml({ upstream, agentKey: KEY, durability: 'relaxed', watch }).replace(
    /policy: \{ path: \.\/policies, watch: (true|false) \}/,
    'policy: { path: ./policies, watch: $1, require_tests: true }',
  );

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(() => upstream.close());

describe('policy.require_tests', () => {
  it('writes the option into the policy section (the yaml helper still has that shape)', () => {
    expect(yaml('http://127.0.0.1:1', false)).toContain('require_tests: true');
  });

  it('refuses to start with a policy whose own test fails, naming the test', async () => {
    await expect(
      startTestGateway({
        yaml: yaml(upstream.url, false),
        policies: { 'p.rego': POLICY('v1'), 'p_test.rego': FAILING_TEST },
      }),
    ).rejects.toThrow(/policy\.require_tests: 1 of 1 tests of .* fail: portcullis_test\.test_denies/);
  });

  it('refuses to start with a policy that has no tests', async () => {
    await expect(startTestGateway({ yaml: yaml(upstream.url, false), policies: { 'p.rego': POLICY('v1') } })).rejects.toThrow(
      /policy\.require_tests: .* has no tests/,
    );
  });

  it('on hot reload rejects a change whose tests fail and keeps the old policy in force', async () => {
    const gw = await startTestGateway({
      yaml: yaml(upstream.url, true),
      policies: { 'p.rego': POLICY('v1'), 'p_test.rego': TEST },
    });
    try {
      const before = gw.gateway.policy.current.revision;
      expect((await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth })).status).toBe(200);
      writeFileSync(path.join(gw.policyDir, 'p_test.rego'), FAILING_TEST);
      const rejected = await gw.waitForAudit((x) => x.type === 'policy_rejected', 8000);
      expect(rejected.error).toMatch(/policy\.require_tests: 1 of 1 tests .* fail: portcullis_test\.test_denies/);
      expect(gw.gateway.policy.current.revision).toBe(before);
      expect((await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth })).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

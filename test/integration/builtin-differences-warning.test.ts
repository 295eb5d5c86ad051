/**
 * `policy build` and every gateway load (both go through compilePolicy) warn about each call to a
 * builtin that still behaves differently from OPA's Go evaluator, naming the builtin and the file:
 * the gateway logs the warning and records it in policy_loaded, the CLI prints it. The starter
 * library calls none of them. Real OPA builds the bundles.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compilePolicy } from '../../src/policy/bundle';
import { OPA, oneRouteYaml, startTestGateway } from '../helpers/harness';

describe('warnings about builtins that differ from OPA', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-differences-'));
    await writeFile(
      path.join(dir, 'policy.rego'),
      [
        'package portcullis',
        '',
        '# json.marshal(x) here is only a comment',
        'decision := {"allow": false, "reasons": [sprintf("denied: %v", [input.request.body])]}',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the builtin and the rego file when a compiled policy calls one', async () => {
    const { warnings } = await compilePolicy({ path: dir, entrypoint: 'portcullis/decision', opa: OPA });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^policy\.rego:4: sprintf behaves differently in the gateway than in opa test: a set operand prints as an array/);
  });

  it('says nothing for the starter library', async () => {
    const starter = path.join(__dirname, '..', '..', 'policies');
    expect((await compilePolicy({ path: starter, entrypoint: 'portcullis/decision', opa: OPA })).warnings).toEqual([]);
  });

  it('a gateway loading such a policy logs the warning and records it in policy_loaded', async () => {
    const gw = await startTestGateway({
      yaml: oneRouteYaml({ upstream: 'http://127.0.0.1:9', agentKey: 'k' }),
      policies: { 'policy.rego': 'package portcullis\n\ndecision := {"allow": false, "reasons": [sprintf("%v", [input.request.body])]}\n' },
    });
    try {
      const loaded = await gw.waitForAudit((r) => r.type === 'policy_loaded');
      expect(loaded.warnings).toEqual([expect.stringMatching(/^policy\.rego:3: sprintf behaves differently/)]);
      expect(gw.logs()).toMatch(/"code":"PC_BUILTIN_DIFFERS".*policy\.rego:3: sprintf behaves differently/);
    } finally {
      await gw.close();
    }
  });
});

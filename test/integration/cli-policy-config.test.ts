/**
 * `portcullis policy test|build|eval -c <config>` read the config only for the policy: they
 * must work where the credentials' environment variables and secret files are absent (a CI job,
 * a laptop), while `portcullis start` on the same config still refuses to run without them.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXIT } from '../../src/cli/exit-codes';
import { main } from '../../src/cli/main';
import '../helpers/harness'; // sets PORTCULLIS_OPA

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-cli-policy-config-'));
mkdirSync(path.join(dir, 'policies'));
writeFileSync(path.join(dir, 'policies', 'p.rego'), 'package portcullis\n\ndecision := {"allow": input.request.method == "GET", "reasons": ["only reads"]}\n');
writeFileSync(
  path.join(dir, 'policies', 'p_test.rego'),
  'package portcullis_test\n\nimport data.portcullis\n\ntest_get if portcullis.decision.allow with input as {"request": {"method": "GET"}}\n',
);
const config = path.join(dir, 'portcullis.yaml');
writeFileSync(
  config,
  `policy: { path: ./policies }
audit:
  path: ./audit
  signing_key: { env: PORTCULLIS_TEST_ABSENT_AUDIT_KEY }
  sinks:
    - { name: hec, type: splunk_hec, url: "https://splunk.example/", token: { file: ./absent-token } }
credentials:
  github: { type: bearer, env: PORTCULLIS_TEST_ABSENT_TOKEN }
routes:
  - { name: github, prefix: /github/, upstream: "https://api.github.com/", credential: github }
`,
);
const input = path.join(dir, 'input.json');
writeFileSync(input, JSON.stringify({ request: { method: 'GET' } }));

test('policy test, build and eval with -c need none of the secrets', async () => {
  expect(await main(['policy', 'test', '-c', config])).toBe(EXIT.OK);
  expect(await main(['policy', 'build', '-c', config, '-o', path.join(dir, 'bundle.tar.gz')])).toBe(EXIT.OK);
  expect(await main(['policy', 'eval', '-c', config, '-i', input])).toBe(EXIT.OK);
});

test('start on the same config refuses: the secrets are missing', async () => {
  expect(await main(['start', '-c', config])).toBe(EXIT.CONFIG);
});

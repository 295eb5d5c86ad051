/**
 * Hot reload through the real gateway and the real OPA: every way an editor saves a file (in
 * place, or a temp file renamed over it as `sed -i`, `mv` and most editors do) is enforced.
 */
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { oneRouteYaml, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'reload-test-key';
const auth = { authorization: `Bearer ${KEY}` };
const rego = (v: string) => `package portcullis\n\ndecision := {"allow": false, "reasons": ["${v}"]}\n`;
let upstream: Upstream;

beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(() => upstream.close());

/** The reasons of the decision the gateway makes now. */
async function enforced(gw: TestGateway): Promise<string> {
  const r = await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth });
  return (JSON.parse(r.body) as { error: { reasons: string[] } }).error.reasons[0];
}

/** Polls the gateway's decision until it is `version`, or fails after `ms`. */
async function untilEnforced(gw: TestGateway, version: string, ms: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const now = await enforced(gw);
    if (now === version) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`${version} not enforced after ${ms} ms (still ${now})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('edits by rename and in place', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ yaml: oneRouteYaml({ upstream: upstream.url, agentKey: KEY, durability: 'relaxed', watch: true }), policies: { 'p.rego': rego('v1') } });
  });
  afterAll(() => gw.close());

  test('each save is enforced, whichever way it was saved', async () => {
    const file = path.join(gw.policyDir, 'p.rego');
    const byRename = (text: string) => {
      const tmp = path.join(gw.policyDir, 'sedAb12Cd'); // what sed -i writes, then renames
      writeFileSync(tmp, text);
      renameSync(tmp, file);
    };
    const inPlace = (text: string) => writeFileSync(file, text);
    expect(await enforced(gw)).toBe('v1');
    const steps: [string, (t: string) => void][] = [
      ['v2', byRename],
      ['v3', inPlace],
      ['v4', byRename],
      ['v5', inPlace],
      ['v6', inPlace],
      ['v7', byRename],
    ];
    for (const [v, save] of steps) {
      save(rego(v));
      await untilEnforced(gw, v, 5000);
    }
  });
});

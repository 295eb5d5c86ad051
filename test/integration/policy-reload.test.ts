/**
 * Hot reload through the real gateway and the real OPA: every way an editor saves a file (in
 * place, or a temp file renamed over it as `sed -i`, `mv` and most editors do) is enforced; a
 * change no watch reports is caught by the poll; a rejected change is visible as drift until it
 * is fixed, and the fix is recorded.
 */
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
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

/** A gateway watching its policy, polling every `pollMs`, with the admin listener. */
async function start(policies: Record<string, string>, pollMs: number, dir?: string): Promise<TestGateway> {
  const yaml = oneRouteYaml({ upstream: upstream.url, agentKey: KEY, durability: 'relaxed', watch: true, admin: true }).replace(
    'watch: true }',
    `watch: true, poll_ms: ${pollMs} }`,
  );
  const gw = await startTestGateway({ yaml, policies, dir });
  await gw.gateway.policy.settled(); // its first look at the files, which arms the watches
  return gw;
}

/** The first reason of the decision the gateway makes now. */
async function enforced(gw: TestGateway): Promise<string> {
  const r = await rawRequest(gw.gateway.url, { path: '/up/x', headers: auth });
  return (JSON.parse(r.body) as { error: { reasons: string[] } }).error.reasons[0];
}

/** Polls the gateway's decision until it is `version`; returns how long that took. */
async function untilEnforced(gw: TestGateway, version: string, ms: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const now = await enforced(gw);
    if (now === version) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`${version} not enforced after ${ms} ms (still ${now})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`condition not reached: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const readyz = async (gw: TestGateway) => {
  const r = await rawRequest(gw.gateway.adminUrl!, { path: '/readyz' });
  return {
    status: r.status,
    body: JSON.parse(r.body) as {
      status: string;
      policy: { in_force: string; on_disk: string | null; drift: boolean; last_rejection: { revision: string | null; error: string } | null };
    },
  };
};
const metrics = async (gw: TestGateway) => (await rawRequest(gw.gateway.adminUrl!, { path: '/metrics' })).body;
const metric = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}"=]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

const byRename = (file: string, text: string) => {
  const tmp = path.join(path.dirname(file), 'sedAb12Cd'); // what sed -i writes, then renames
  writeFileSync(tmp, text);
  renameSync(tmp, file);
};
const inPlace = (file: string, text: string) => writeFileSync(file, text);

describe('G17: an edit saved by any editor is enforced within one poll interval plus a build, or visible as drift', () => {
  test('by the file watches alone (poll off for the test): rename and in place, several times, and in a directory created later', async () => {
    const gw = await start({ 'p.rego': rego('v1') }, 3_600_000);
    try {
      const file = path.join(gw.policyDir, 'p.rego');
      expect(await enforced(gw)).toBe('v1');
      const steps: [string, (f: string, t: string) => void][] = [
        ['v2', byRename],
        ['v3', inPlace],
        ['v4', byRename],
        ['v5', inPlace],
        ['v6', inPlace],
        ['v7', byRename],
      ];
      const took: number[] = [];
      for (const [v, save] of steps) {
        save(file, rego(v));
        took.push(await untilEnforced(gw, v, 3000));
      }
      // A directory that appears is watched too: its file, edited in place, is enforced.
      mkdirSync(path.join(gw.policyDir, 'sub'));
      writeFileSync(path.join(gw.policyDir, 'sub', 'v.rego'), 'package portcullis.sub\n\nversion := "v8"\n');
      inPlace(file, 'package portcullis\n\ndecision := {"allow": false, "reasons": [data.portcullis.sub.version]}\n');
      took.push(await untilEnforced(gw, 'v8', 3000));
      inPlace(path.join(gw.policyDir, 'sub', 'v.rego'), 'package portcullis.sub\n\nversion := "v9"\n');
      took.push(await untilEnforced(gw, 'v9', 3000));
      byRename(path.join(gw.policyDir, 'sub', 'v.rego'), 'package portcullis.sub\n\nversion := "v10"\n');
      took.push(await untilEnforced(gw, 'v10', 3000));
      inPlace(path.join(gw.policyDir, 'sub', 'v.rego'), 'package portcullis.sub\n\nversion := "v11"\n');
      took.push(await untilEnforced(gw, 'v11', 3000));
      process.stdout.write(`watch-only reload latencies (ms): ${took.join(' ')}\n`);
    } finally {
      await gw.close();
    }
  });

  test('an edit no watch reports (a symlinked file edited where nothing watches) is caught by the poll', async () => {
    const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'portcullis-elsewhere-'));
    const target = path.join(elsewhere, 'real.rego');
    writeFileSync(target, rego('v1'));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-test-'));
    mkdirSync(path.join(dir, 'policies'));
    symlinkSync(target, path.join(dir, 'policies', 'p.rego'));
    const gw = await start({}, 300, dir);
    try {
      expect(await enforced(gw)).toBe('v1');
      inPlace(target, rego('v2'));
      const took = await untilEnforced(gw, 'v2', 3000);
      expect(metric(await metrics(gw), 'portcullis_policy_watch_gaps_total{cause="poll"}')).toBeGreaterThanOrEqual(1);
      expect(gw.logs()).toContain('the poll found a policy change no file watch reported');
      process.stdout.write(`poll reload latency (ms, poll_ms 300): ${took}\n`);
    } finally {
      await gw.close();
    }
  });

  test('a policy directory replaced by rename (poll off): the move is seen, and the new directory is watched', async () => {
    const gw = await start({ 'p.rego': rego('v1') }, 3_600_000);
    try {
      const fresh = path.join(gw.dir, 'policies.new');
      mkdirSync(fresh);
      writeFileSync(path.join(fresh, 'p.rego'), rego('v2'));
      renameSync(gw.policyDir, path.join(gw.dir, 'policies.old')); // the watched directory reports moving away
      renameSync(fresh, gw.policyDir);
      await untilEnforced(gw, 'v2', 3000);
      inPlace(path.join(gw.policyDir, 'p.rego'), rego('v3')); // only a watch on the new inode sees this
      await untilEnforced(gw, 'v3', 3000);
    } finally {
      await gw.close();
    }
  });

  test('a broken change is rejected and shown as drift until fixed; the fix is a policy_loaded', async () => {
    const gw = await start({ 'p.rego': rego('v1') }, 300);
    try {
      const file = path.join(gw.policyDir, 'p.rego');
      const good = gw.gateway.policy.current.revision;
      let r = await readyz(gw);
      expect(r.body.policy).toEqual({ in_force: good, on_disk: good, drift: false, last_rejection: null });
      expect(metric(await metrics(gw), 'portcullis_policy_drift')).toBe(0);

      byRename(file, 'package portcullis\n\ndecision := {"allow": true \n');
      const rejected = await gw.waitForAudit((x) => x.type === 'policy_rejected', 5000);
      expect(rejected).toMatchObject({ in_force: good, revision: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
      expect(rejected.revision).not.toBe(good);
      expect(await enforced(gw)).toBe('v1'); // the old policy stays in force
      r = await readyz(gw);
      expect(r.status).toBe(200); // still serving, with the last good policy
      expect(r.body.policy).toMatchObject({ in_force: good, on_disk: rejected.revision, drift: true, last_rejection: { revision: rejected.revision } });
      expect(r.body.policy.last_rejection!.error).toMatch(/does not compile/);
      let m = await metrics(gw);
      expect(metric(m, 'portcullis_policy_drift')).toBe(1);
      expect(metric(m, `portcullis_policy_revision_info{state="in_force",revision="${good}"}`)).toBe(1);
      expect(metric(m, `portcullis_policy_revision_info{state="on_disk",revision="${rejected.revision}"}`)).toBe(1);
      // The poll does not reject the same files again and again.
      await new Promise((res) => setTimeout(res, 1000));
      expect(gw.audit().filter((x) => x.type === 'policy_rejected')).toHaveLength(1);

      // Reverting to the policy in force ends the drift, and says so on the record.
      byRename(file, rego('v1'));
      const recovered = await gw.waitForAudit((x) => x.type === 'policy_loaded' && x.recovers, 5000);
      expect(recovered).toMatchObject({ revision: good, previous: good, recovers: { revision: rejected.revision } });
      expect(gw.logs()).toContain('the rejected change is gone');
      r = await readyz(gw);
      expect(r.body.policy).toEqual({ in_force: good, on_disk: good, drift: false, last_rejection: null });
      m = await metrics(gw);
      expect(metric(m, 'portcullis_policy_drift')).toBe(0);
      expect(m).not.toContain(rejected.revision);

      // Broken again, then fixed with a new version: loaded, recovering from the second rejection.
      inPlace(file, 'package portcullis\n\ndecision := {\n');
      const again = await gw.waitForAudit((x) => x.type === 'policy_rejected' && x.revision !== rejected.revision, 5000);
      inPlace(file, rego('v2'));
      await untilEnforced(gw, 'v2', 3000);
      const fixed = await gw.waitForAudit((x) => x.type === 'policy_loaded' && x.recovers?.revision === again.revision, 5000);
      expect(fixed.previous).toBe(good);
      expect(fixed.revision).toBe(gw.gateway.policy.current.revision);
      await until(
        () => readyz(gw),
        (x) => x.body.policy.drift === false && x.body.policy.on_disk === fixed.revision,
      );
    } finally {
      await gw.close();
    }
  });

  test('a policy directory that disappears keeps the policy in force, as drift, until it is back', async () => {
    const gw = await start({ 'p.rego': rego('v1') }, 300);
    try {
      const good = gw.gateway.policy.current.revision;
      const away = path.join(gw.dir, 'policies.away');
      renameSync(gw.policyDir, away);
      const rejected = await gw.waitForAudit((x) => x.type === 'policy_rejected', 5000);
      expect(rejected).toMatchObject({ revision: null, in_force: good, error: expect.stringMatching(/no such file or directory/) });
      expect(await enforced(gw)).toBe('v1');
      expect((await readyz(gw)).body.policy).toMatchObject({ in_force: good, on_disk: null, drift: true });
      expect(metric(await metrics(gw), 'portcullis_policy_revision_info{state="on_disk",revision="unreadable"}')).toBe(1);
      renameSync(away, gw.policyDir);
      await gw.waitForAudit((x) => x.type === 'policy_loaded' && x.recovers?.revision === null, 5000);
      expect((await readyz(gw)).body.policy).toEqual({ in_force: good, on_disk: good, drift: false, last_rejection: null });
    } finally {
      await gw.close();
    }
  });
});

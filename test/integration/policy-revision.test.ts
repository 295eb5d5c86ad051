/**
 * The policy revision is a content address of the sources: the same files in any directory
 * give the same revision, one changed byte changes it, the built bundle holds no absolute path,
 * and the shell one-liner in docs/policy.md recomputes it from the files alone.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { compilePolicy } from '../../src/policy/bundle';
import { OPA, oneRouteYaml, startTestGateway, startUpstream, type Upstream } from '../helpers/harness';

/** The one-liner, as docs/policy.md prints it (the block after its marker comment). */
const ONE_LINER = (() => {
  const doc = readFileSync(path.resolve(__dirname, '../../docs/policy.md'), 'utf8');
  const block = /<!-- revision-one-liner -->\s*```sh\n([\s\S]*?)```/.exec(doc);
  if (!block) throw new Error('docs/policy.md has no revision one-liner');
  return block[1].trim();
})();

/** Runs a shell pipeline in `cwd` (the directory holding `policies/`). */
const sh = (script: string, cwd: string) => execFileSync('bash', ['-o', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });

/** Writes the same policy tree under `<parent>/policies`: Rego, data in JSON and YAML, a sub-directory, a test, a hidden copy, a symlink. */
function writeTree(parent: string, shared: string): string {
  const dir = path.join(parent, 'policies');
  mkdirSync(path.join(dir, 'sub'), { recursive: true });
  mkdirSync(path.join(dir, '.git'));
  writeFileSync(
    path.join(dir, 'p.rego'),
    'package portcullis\n\ndecision := {"allow": data.sub.allow, "reasons": [data.portcullis.sub.why, sprintf("%v", [data.limit])]}\n',
  );
  writeFileSync(path.join(dir, 'sub', 'q.rego'), 'package portcullis.sub\n\nwhy := "q"\n');
  writeFileSync(path.join(dir, 'sub', 'data.json'), '{"allow": false}\n');
  writeFileSync(path.join(dir, 'limits.yaml'), 'limit: 100\n');
  writeFileSync(path.join(dir, 'p_test.rego'), 'package portcullis\n\ntest_x if true\n');
  writeFileSync(path.join(dir, '.git', 'x.rego'), 'package other\n');
  writeFileSync(path.join(dir, 'README.md'), 'not a source\n');
  symlinkSync(shared, path.join(dir, 'linked.rego'));
  return dir;
}

const compile = (dir: string, output?: string) => compilePolicy({ path: dir, entrypoint: 'portcullis/decision', opa: OPA, output });

describe('G17: the revision is a content address', () => {
  let a: string;
  let b: string;
  beforeAll(() => {
    const shared = path.join(mkdtempSync(path.join(os.tmpdir(), 'portcullis-shared-')), 'shared.rego');
    writeFileSync(shared, 'package shared\n\nx := 1\n');
    a = writeTree(mkdtempSync(path.join(os.tmpdir(), 'portcullis-rev-a-')), shared);
    const deep = path.join(mkdtempSync(path.join(os.tmpdir(), 'portcullis-rev-b-')), 'some', 'other', 'place');
    mkdirSync(deep, { recursive: true });
    b = writeTree(deep, shared);
  });

  test("the same sources in two directories have one revision, which the docs' one-liner recomputes", async () => {
    const [ra, rb] = [await compile(a), await compile(b)];
    expect(ra.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(rb.revision).toBe(ra.revision);
    expect(ra.files.map((f) => f.path)).toEqual(['limits.yaml', 'linked.rego', 'p.rego', 'sub/data.json', 'sub/q.rego']);
    for (const dir of [a, b]) expect(`sha256:${sh(ONE_LINER, path.dirname(dir)).split(' ')[0]}`).toBe(ra.revision);
    // Without its last stage, the one-liner prints the file list the revision covers.
    const listing = sh(ONE_LINER.replace(/\s*\|\s*sha256sum$/, ''), path.dirname(a));
    expect(listing).toBe(ra.files.map((f) => `${f.sha256}  ${f.path}\n`).join(''));
  });

  test('one changed byte changes it; a test file, a hidden file or a non-source does not', async () => {
    const before = (await compile(a)).revision;
    writeFileSync(path.join(a, 'p_test.rego'), 'package portcullis\n\ntest_y if true\n');
    writeFileSync(path.join(a, '.git', 'x.rego'), 'package other2\n');
    writeFileSync(path.join(a, 'README.md'), 'changed\n');
    expect((await compile(a)).revision).toBe(before);
    writeFileSync(path.join(a, 'limits.yaml'), 'limit: 101\n');
    const after = (await compile(a)).revision;
    expect(after).not.toBe(before);
    expect(`sha256:${sh(ONE_LINER, path.dirname(a)).split(' ')[0]}`).toBe(after);
    writeFileSync(path.join(a, 'limits.yaml'), 'limit: 100\n');
    expect((await compile(a)).revision).toBe(before);
  });

  test('the bundle names no absolute path, carries the revision in its manifest, and is the same bytes from either directory', async () => {
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-out-'));
    const [out, other] = [path.join(outDir, 'b.tar.gz'), path.join(outDir, 'a.tar.gz')];
    const compiled = await compile(b, out);
    await compile(a, other);
    expect(readFileSync(other).equals(readFileSync(out))).toBe(true);
    const tar = gunzipSync(readFileSync(out)).toString('latin1');
    expect(tar).not.toContain(path.dirname(b));
    expect(tar).not.toContain(`${os.tmpdir()}/`);
    expect(tar).toContain(`"revision":"${compiled.revision}"`);
  });
});

describe('the policy_loaded record lists what the revision covers', () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(() => upstream.close());

  test("two gateways on the same files in different directories record one revision, with each file's sha256", async () => {
    const files = { 'policies/p.rego': 'package portcullis\n\ndecision := data.ok\n', 'policies/d/data.json': '{"ok": true}\n' };
    const yaml = oneRouteYaml({ upstream: upstream.url, durability: 'relaxed' });
    const gws = [await startTestGateway({ yaml, policies: {}, files }), await startTestGateway({ yaml, policies: {}, files })];
    try {
      const [la, lb] = gws.map((g) => g.audit().find((x) => x.type === 'policy_loaded')!);
      expect(la.revision).toBe(lb.revision);
      expect(gws[0].audit().find((x) => x.type === 'gateway_start')!.policy_revision).toBe(la.revision);
      const listing = sh(ONE_LINER.replace(/\s*\|\s*sha256sum$/, ''), gws[0].dir);
      expect(la.files).toEqual(
        listing
          .trim()
          .split('\n')
          .map((l) => ({ sha256: l.split('  ')[0], path: l.split('  ')[1] })),
      );
      expect(la.files.map((f: { path: string }) => f.path)).toEqual(['d/data.json', 'p.rego']);
    } finally {
      for (const g of gws) await g.close();
    }
  });
});

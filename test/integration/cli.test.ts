/**
 * The `portcullis` CLI as a user runs it: the built dist/ entry point in a child process, with the
 * real OPA. Exit codes are the documented ones (docs/cli.md).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { OPA, keyHash, rawRequest, startUpstream } from '../helpers/harness';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');

function run(args: string[], input?: string, where: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, PORTCULLIS_OPA: OPA, ...where.env }, cwd: where.cwd ?? ROOT },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-cli-'));
const policies = path.join(dir, 'policies');
mkdirSync(policies);
writeFileSync(path.join(policies, 'p.rego'), 'package portcullis\n\ndecision := {"allow": input.request.method == "GET", "reasons": ["only reads"]}\n');
writeFileSync(
  path.join(policies, 'p_test.rego'),
  'package portcullis_test\n\nimport data.portcullis\n\ntest_get if portcullis.decision.allow with input as {"request": {"method": "GET"}}\n',
);

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run the suite with 'npm test', which builds first`);
});

test('--help lists the commands; each command has its own help', async () => {
  const r = await run(['--help']);
  expect(r.code).toBe(0);
  for (const c of ['start', 'policy build', 'policy test', 'policy eval']) expect(r.stdout).toContain(c);
  for (const c of [
    ['start', '--help'],
    ['policy', 'build', '--help'],
    ['policy', 'test', '--help'],
    ['policy', 'eval', '--help'],
  ]) {
    const h = await run(c);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Usage: portcullis /);
  }
});

test('usage errors exit 2', async () => {
  expect((await run(['frobnicate'])).code).toBe(2);
  expect((await run(['policy', 'eval'])).code).toBe(2);
  expect((await run(['start', '--bogus'])).code).toBe(2);
});

test('an unknown option or command is one short line with a suggestion, exit 2', async () => {
  const cases: [string[], string][] = [
    [['policy', 'eval', '--polcy', 'x', '--input', '-'], "portcullis: unknown option --polcy; did you mean --policy?\nRun 'portcullis policy eval --help'.\n"],
    [['audit', 'query', '.', '--agnet', 'x'], "portcullis: unknown option --agnet; did you mean --agent?\nRun 'portcullis audit query --help'.\n"],
    [['start', '-x'], "portcullis: unknown option -x\nRun 'portcullis start --help'.\n"],
    [['polcy', 'test'], "portcullis: unknown command polcy; did you mean policy?\nRun 'portcullis --help'.\n"],
    [['policy', 'biuld'], "portcullis: unknown command policy biuld; did you mean policy build?\nRun 'portcullis --help'.\n"],
    [['audit', 'frobnicate'], "portcullis: unknown command audit frobnicate\nRun 'portcullis --help'.\n"],
  ];
  for (const [args, stderr] of cases) expect({ args, ...(await run(args)) }).toMatchObject({ args, code: 2, stdout: '', stderr });
});

test('policy test and policy eval take the policy directory the same ways: -p DIR, DIR, or -c CONFIG alone', async () => {
  expect((await run(['policy', 'test', '-p', policies])).code).toBe(0);
  expect((await run(['policy', 'test', policies])).code).toBe(0);
  const get = JSON.stringify({ request: { method: 'GET' } });
  expect((await run(['policy', 'eval', '-p', policies, '--input', '-'], get)).code).toBe(0);
  expect((await run(['policy', 'eval', policies, '--input', '-'], get)).code).toBe(0);
  for (const cmd of [
    ['policy', 'test'],
    ['policy', 'eval', '--input', '-'],
    ['policy', 'build'],
  ]) {
    const both = await run([...cmd, '-c', path.join(dir, 'none.yaml'), '-p', policies], get);
    expect({ cmd, code: both.code, stderr: both.stderr }).toMatchObject({ cmd, code: 2, stderr: expect.stringContaining('--config names the policy') });
  }
});

test('policy build without -o leaves nothing behind: not in the working directory, TMPDIR or the policy directory', async () => {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'portcullis-cwd-'));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'portcullis-tmp-'));
  const r = await run(['policy', 'build', '-p', policies], undefined, { cwd, env: { TMPDIR: tmp } });
  expect(r.code).toBe(0);
  const info = JSON.parse(r.stdout);
  expect(info).toEqual({ revision: expect.stringMatching(/^sha256:/), entrypoints: ['portcullis/decision'], warnings: [] });
  expect(readdirSync(cwd)).toEqual([]);
  expect(readdirSync(tmp)).toEqual([]);
  // OPA runs in the policy directory: it leaves nothing there either.
  expect(readdirSync(policies).sort()).toEqual(['p.rego', 'p_test.rego']);
});

test('policy build writes a bundle and prints its revision', async () => {
  const out = path.join(dir, 'bundle.tar.gz');
  const r = await run(['policy', 'build', '--policy', policies, '-o', out]);
  expect(r.code).toBe(0);
  const info = JSON.parse(r.stdout);
  expect(info.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(existsSync(out)).toBe(true);
  // The bundle evaluates the same as the directory.
  const input = path.join(dir, 'input.json');
  writeFileSync(input, JSON.stringify({ request: { method: 'GET' } }));
  const viaBundle = await run(['policy', 'eval', '--policy', out, '--input', input]);
  expect(viaBundle.code).toBe(0);
  // A bundle's revision is the hash of its bytes; the sources' revision is in its manifest (docs/policy.md).
  const bytes = readFileSync(out);
  expect(JSON.parse(viaBundle.stdout).policy_revision).toBe(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  expect(gunzipSync(bytes).toString('latin1')).toContain(`"revision":"${info.revision}"`);
});

test("policy build fails with exit 4 and OPA's message", async () => {
  const bad = path.join(dir, 'bad');
  mkdirSync(bad);
  writeFileSync(path.join(bad, 'p.rego'), 'package portcullis\n\ndecision := crypto.sha256("x")\n');
  const r = await run(['policy', 'build', '--policy', bad, '-o', path.join(dir, 'b2.tar.gz')]);
  expect(r.code).toBe(4);
  expect(r.stderr).toContain('crypto.sha256');
});

test('policy eval: exit 0 on allow, 1 on deny, reasons printed', async () => {
  const input = path.join(dir, 'post.json');
  writeFileSync(
    input,
    JSON.stringify({ route: 'x', agent: null, request: { method: 'POST', path: '/', query: {}, headers: {} }, time: new Date().toISOString() }),
  );
  const deny = await run(['policy', 'eval', '--policy', policies, '--input', input]);
  expect(deny.code).toBe(1);
  expect(JSON.parse(deny.stdout)).toMatchObject({ allow: false, reasons: ['only reads'] });
  const allow = await run(['policy', 'eval', '--policy', policies, '--input', '-'], JSON.stringify({ request: { method: 'GET' } }));
  expect(allow.code).toBe(0);
  expect(JSON.parse(allow.stdout).allow).toBe(true);
});

test('policy test runs opa test: 0 on pass, 1 on failure', async () => {
  const ok = await run(['policy', 'test', policies]);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toMatch(/PASS: 1\/1/);
  const failing = path.join(dir, 'failing');
  mkdirSync(failing);
  writeFileSync(path.join(failing, 'f_test.rego'), 'package f_test\n\ntest_no if false\n');
  expect((await run(['policy', 'test', failing])).code).toBe(1);
});

test('policy test passes on the shipped starter library and the quickstart policy', async () => {
  for (const d of ['policies', 'examples/quickstart/policies']) {
    const r = await run(['policy', 'test', path.join(ROOT, d)]);
    expect({ d, code: r.code, out: r.stdout.split('\n').slice(-3).join('\n') }).toMatchObject({ d, code: 0 });
  }
});

test('start: a bad config exits 3 naming file, key path and problem', async () => {
  const cfg = path.join(dir, 'bad.yaml');
  writeFileSync(cfg, 'policy: { path: ./policies }\naudit: { path: ./audit, keep: forever }\nroutes: []\n');
  const r = await run(['start', '--config', cfg]);
  expect(r.code).toBe(3);
  expect(r.stderr).toContain(`${cfg}:2:25: audit.keep: unknown key "keep"`);
  expect(r.stderr).toContain('[CONFIG_UNKNOWN_KEY]');
});

test('start runs the gateway until SIGTERM, then drains and exits 0', async () => {
  const upstream = await startUpstream();
  const cfg = path.join(dir, 'ok.yaml');
  writeFileSync(
    cfg,
    `listen: 127.0.0.1:0\nadmin: { enabled: false }\npolicy: { path: ./policies }\naudit: { path: ./audit-start }\nagents:\n  - id: a\n    key_sha256: "${keyHash('k')}"\nroutes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/\n`,
  );
  const child = spawn(process.execPath, [CLI, 'start', '-c', cfg], { env: { ...process.env, PORTCULLIS_OPA: OPA } });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no start line: ${out}`)), 15000);
    child.stdout.on('data', () => {
      const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
  });
  const r = await rawRequest(url, { path: '/up/x', headers: { authorization: 'Bearer k' } });
  expect(r.status).toBe(200);
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.on('exit', resolve));
  expect(code).toBe(0);
  expect(out).toContain('portcullis stopped');
  await upstream.close();
});

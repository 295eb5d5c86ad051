/**
 * `portcullis audit verify` on a real trail written by a real gateway, then tampered with:
 * each kind of tampering is reported with its file and seq, and the CLI exits 1.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verifyTrail } from '../../src/audit/verify';
import { keyHash, rawRequest, startTestGateway, startUpstream } from '../helpers/harness';

const CLI = path.resolve(__dirname, '../../dist/src/cli/main.js');
let trail: string;

beforeAll(async () => {
  const upstream = await startUpstream();
  const gw = await startTestGateway({
    yaml: `listen: 127.0.0.1:0\nadmin: { enabled: false }\npolicy: { path: ./policies, watch: false }\naudit: { path: ./audit }\nagents:\n  - id: a\n    key_sha256: "${keyHash('k')}"\nroutes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/\n`,
    policies: { 'p.rego': 'package portcullis\n\ndecision := {"allow": input.request.method == "GET", "reasons": ["GET only"]}\n' },
  });
  for (let i = 0; i < 6; i++) await rawRequest(gw.gateway.url, { path: `/up/${i}`, method: i % 2 ? 'GET' : 'DELETE', headers: { authorization: 'Bearer k' } });
  await gw.waitForAudit((r) => r.type === 'outcome' && r.status === 200 && gw.audit().filter((x) => x.type === 'outcome').length === 3);
  await gw.close();
  await upstream.close();
  trail = gw.auditDir;
});

/** A copy of the trail with its segment's lines changed by `edit`. */
function tampered(edit: (lines: string[]) => string[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-tamper-'));
  const seg = readdirSync(trail).find((f) => f.endsWith('.jsonl'))!;
  const lines = readFileSync(path.join(trail, seg), 'utf8').split('\n').filter(Boolean);
  writeFileSync(path.join(dir, seg), edit(lines).join('\n') + '\n');
  return dir;
}

function cli(dir: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => execFile(process.execPath, [CLI, 'audit', 'verify', dir], (err, stdout) => resolve({ code: err ? (err as { code: number }).code : 0, stdout })));
}

test('an untouched trail verifies (exit 0)', async () => {
  const report = verifyTrail(trail);
  expect(report.problems).toEqual([]);
  // policy_loaded, gateway_start, 6 decisions, 3 outcomes, gateway_stop
  expect(report.records).toBe(12);
  const r = await cli(trail);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^OK: \d+ records/m);
});

test.each([
  // Line 3 (seq 3) is the first decision: the DELETE that was denied.
  ['a modified record', (l: string[]) => l.map((x, i) => (i === 2 ? x.replace('"deny"', '"allow"') : x)), /seq 4\).*prev does not match/],
  ['a deleted record', (l: string[]) => l.filter((_x, i) => i !== 2), /seq 4\).*1 record\(s\) missing/],
  ['swapped records', (l: string[]) => l.map((x, i) => (i === 2 ? l[3] : i === 3 ? l[2] : x)), /seq 4\).*seq 4 where 3 was expected/],
  ['a duplicated record', (l: string[]) => [...l.slice(0, 3), l[2], ...l.slice(3)], /seq 3\).*duplicated or reordered/],
  ['an inserted forged record', (l: string[]) => [...l.slice(0, 3), JSON.stringify({ ...JSON.parse(l[3]), decision_id: 'forged' }), ...l.slice(3)], /TAMPERED/],
  ['a cut last line', (l: string[]) => [...l.slice(0, -1), l.at(-1)!.slice(0, 20)], /not valid JSON|incomplete/],
])('%s is reported with its seq (exit 1)', async (_name, edit, message) => {
  const dir = tampered(edit);
  const r = await cli(dir);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(message);
  expect(r.stdout).toMatch(/^FAILED:/m);
});

test('a trail whose first segment is gone does not verify', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-tamper-'));
  const seg = readdirSync(trail).find((f) => f.endsWith('.jsonl'))!;
  const lines = readFileSync(path.join(trail, seg), 'utf8').split('\n').filter(Boolean);
  writeFileSync(path.join(dir, 'audit-00000002.jsonl'), lines.slice(5).join('\n') + '\n');
  const report = verifyTrail(dir);
  expect(report.problems[0]).toMatchObject({ seq: 6 });
  expect(report.problems[0].problem).toMatch(/5 record\(s\) missing/);
  copyFileSync(path.join(trail, seg), path.join(dir, 'audit-00000001.jsonl'));
  expect(verifyTrail(dir).problems[0].problem).toMatch(/duplicated or reordered/);
});

/**
 * G3 under faults: when the audit log cannot be written (a real full filesystem: a small tmpfs),
 * every call is refused with 503 and nothing is forwarded; readiness and metrics say so; when
 * space returns the gateway recovers and the chain continues without a gap.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verifyTrail } from '../../src/audit/offline/verify';
import { oneRouteYaml, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'audit-fault-key';
const auth = { authorization: `Bearer ${KEY}` };
const base = mkdtempSync(path.join(os.tmpdir(), 'portcullis-fault-'));
const mnt = path.join(base, 'audit-fs');
let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  mkdirSync(mnt);
  // A real filesystem that fills up. Needs root (as CI and the dev machines run).
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
  upstream = await startUpstream();
  gw = await startTestGateway({
    dir: base,
    yaml: oneRouteYaml({ upstream: upstream.url, agentKey: KEY, admin: true, audit: './audit-fs/trail' }),
    policies: { 'p.rego': 'package portcullis\n\ndecision := {"allow": input.agent.id == "bot", "reasons": ["bot"]}\n' },
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  try {
    execFileSync('umount', [mnt]);
  } catch {
    /* not mounted */
  }
  rmSync(base, { recursive: true, force: true });
});

function fill(): void {
  // Fill the filesystem until it refuses; leave the junk in place.
  const chunk = Buffer.alloc(4096, 0x41);
  let i = 0;
  try {
    for (;;) writeFileSync(path.join(mnt, `junk-${i++}`), chunk);
  } catch {
    /* ENOSPC: full */
  }
}

test('G3, G4: a full disk refuses every call with 503 (denies included: none without a record), forwards nothing, and recovers', async () => {
  expect((await rawRequest(gw.gateway.url, { path: '/up/before', headers: auth })).status).toBe(200);
  fill();
  // The segment's last page may still have room for a record or two; then writes fail.
  const results: { path: string; status: number; code?: string }[] = [];
  for (let i = 0; i < 30; i++) {
    const p = `/up/during-${i}-${'p'.repeat(1500)}`;
    const r = await rawRequest(gw.gateway.url, { path: p, headers: auth });
    results.push({ path: p.slice(3), status: r.status, code: r.status === 200 ? undefined : JSON.parse(r.body).error.code });
  }
  // G4: calls the gateway denies get either their deny with its record (a small record can
  // still fit a freed page) or 503: never a deny without a record.
  const denies: { id: string; status: number; code: string }[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await rawRequest(gw.gateway.url, { path: `/up/denied-${i}-${'d'.repeat(1500)}`, headers: { authorization: 'Bearer not-a-known-key' } });
    denies.push({ id: String(r.headers['x-portcullis-decision-id']), status: r.status, code: JSON.parse(r.body).error.code });
  }
  expect(denies.some((d) => d.status === 503)).toBe(true);
  const refused = results.filter((r) => r.status !== 200);
  expect(refused.length).toBeGreaterThanOrEqual(20);
  for (const r of refused) expect(r).toMatchObject({ status: 503, code: 'PC_AUDIT_UNAVAILABLE' });
  const forwardedUrls = new Set(upstream.received.map((x) => x.url));
  for (const r of results) expect(forwardedUrls.has(r.path)).toBe(r.status === 200);
  const ready = await rawRequest(gw.gateway.adminUrl!, { path: '/readyz' });
  expect(ready.status).toBe(503);
  expect(ready.body).toContain('audit log not writable');
  const metrics = await rawRequest(gw.gateway.adminUrl!, { path: '/metrics' });
  expect(metrics.body).toMatch(/^portcullis_audit_healthy 0$/m);
  expect(gw.logs()).toContain('audit log write failed');

  execFileSync('sh', ['-c', `rm -f ${mnt}/junk-*`]);
  const after = await rawRequest(gw.gateway.url, { path: '/up/after', headers: auth });
  expect(after.status).toBe(200);
  expect(upstream.received.at(-1)!.url).toBe('/after');
  expect((await rawRequest(gw.gateway.adminUrl!, { path: '/readyz' })).status).toBe(200);
  await gw.waitForAudit((r) => r.type === 'audit_recovered');
  // A small record can fit where a larger one did not, so the outage may end and begin again;
  // an audit_recovered the full disk refused is carried into the next one, so together they
  // count every refused record.
  await new Promise((r) => setTimeout(r, 200));
  const outages = gw.audit().filter((r) => r.type === 'audit_recovered');
  expect(outages.reduce((n, r) => n + r.refused_records, 0)).toBeGreaterThanOrEqual(refused.length);

  // The trail has no trace of the refused calls' failed writes and no gap in its chain.
  const report = verifyTrail(gw.auditDir);
  expect(report.problems).toEqual([]);
  const lines = gw.auditText().split('\n').filter(Boolean);
  const logged = new Set(
    lines
      .map((l) => JSON.parse(l))
      .filter((r) => r.type === 'decision')
      .map((r) => r.path),
  );
  // The trail records what the agent asked for: the route prefix included.
  for (const r of results) expect(logged.has(`/up${r.path}`)).toBe(r.status === 200);
  const recorded = new Set(
    lines
      .map((l) => JSON.parse(l))
      .filter((r) => r.type === 'decision')
      .map((r) => r.decision_id),
  );
  for (const d of denies) {
    if (d.status === 503) expect(d.code).toBe('PC_AUDIT_UNAVAILABLE');
    else expect(recorded.has(d.id)).toBe(true);
  }
  expect(lines.some((l) => l.includes('"path":"/up/after"'))).toBe(true);
});

/**
 * `portcullis audit serve` over HTTP, on a trail a real gateway wrote (with hostile values in it):
 * the verdict of the same verifier as `audit verify`, filters that select what `audit query`
 * selects, attacker text escaped, a strict CSP, Host and method checks, a token off loopback, and
 * a tampered copy reported with its first bad seq while its export still works.
 */
import http from 'node:http';
import { runQuery } from '../../src/audit/offline/query';
import { serveTrail, type TrailServer } from '../../src/audit/viewer/server';
import type { OpenProgress, TrailView } from '../../src/audit/viewer/trail-view';
import { hostileTrail, tamperedCopy } from '../helpers/audit-view';
import { rawRequest } from '../helpers/harness';

const get = (url: string, p: string, headers: Record<string, string> = {}) => rawRequest(url, { path: p, headers });
const idsIn = (page: string) => [...page.matchAll(/href="\/decision\/([0-9a-f-]{36})"/g)].map((m) => m[1]);

let trail: { dir: string; pub: string };
let server: TrailServer;
beforeAll(async () => {
  trail = await hostileTrail();
  server = await serveTrail({ trail: trail.dir, keys: [], host: '127.0.0.1', port: 0, token: null });
  await server.ready;
});
afterAll(() => server?.close());

test('G33: every page leads with the verdict of the same verifier as audit verify', async () => {
  expect((await server.ready).report.verdict).toBe('verified');
  for (const p of ['/timeline', '/denies', '/credentials', '/policies']) {
    const r = await get(server.url, p);
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/<div class="banner verified" id="verdict" data-verdict="verified"><strong>Verified.<\/strong>/);
  }
});

test('a strict CSP without unsafe-inline, set by helmet, and no asset from another origin', async () => {
  const r = await get(server.url, '/timeline');
  const csp = String(r.headers['content-security-policy']);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain('unsafe-inline');
  expect(r.headers['x-content-type-options']).toBe('nosniff');
  for (const m of r.body.matchAll(/(?:src|href)="([^"]+)"/g)) expect(m[1]).toMatch(/^\/(?!\/)/);
  expect((await get(server.url, '/assets/chart.umd.js')).status).toBe(200);
  expect((await get(server.url, '/assets/..%2Fpackage.json')).status).toBe(404);
});

test('attacker-controlled text is escaped: no markup from a record reaches the page', async () => {
  const r = await get(server.url, '/timeline');
  expect(r.body).not.toMatch(/<script>alert|<img src=x|<svg onload|<style>body/);
  expect(r.body).toContain('&lt;img src=x onerror=alert(3)>');
  const denies = await get(server.url, '/denies');
  expect(denies.body).not.toMatch(/<img src=x|<svg onload/);
  expect(denies.body).toContain('&lt;svg onload=alert(4)>');
});

test.each([
  ['route=up', { routes: ['up'] }],
  ['decision=deny', { decision: 'deny' as const }],
  ['route=other&decision=deny', { routes: ['other'], decision: 'deny' as const }],
  ['agent=bot&decision=allow', { agents: ['bot'], decision: 'allow' as const }],
  ['code=PC_UNKNOWN_AGENT', { codes: ['PC_UNKNOWN_AGENT'] }],
])('the filter %s narrows the timeline to what audit query selects', async (q, filter) => {
  const want: string[] = [];
  runQuery(trail.dir, { ...filter, types: ['decision'] }, {}, (hit) => want.push(String(hit.record.decision_id)));
  expect(want.length).toBeGreaterThan(0);
  expect(idsIn((await get(server.url, `/timeline?${q}`)).body)).toEqual(want);
});

test("a decision's page shows its record, chain position and the checkpoint that covers it", async () => {
  const id = idsIn((await get(server.url, '/timeline?decision=allow')).body)[0];
  const r = await get(server.url, `/decision/${id}`);
  expect(r.status).toBe(200);
  expect(r.body).toMatch(/<dt>covered by checkpoint<\/dt><dd>seq \d+ \(signs the first \d+ records/);
  expect(r.body).toContain(id);
  expect((await get(server.url, '/decision/00000000-0000-0000-0000-000000000000')).status).toBe(404);
});

test('exports of the current filter go through the existing exporters', async () => {
  const jsonl = (await get(server.url, '/export?format=jsonl&decision=deny')).body.trim().split('\n');
  expect(jsonl.every((l) => JSON.parse(l).decision === 'deny')).toBe(true);
  const csv = await get(server.url, '/export?format=csv&route=up');
  expect(csv.headers['content-type']).toMatch(/text\/csv/);
  expect(csv.body.split('\n')[0]).toMatch(/seq/);
  const ocsf = (await get(server.url, '/export?format=ocsf')).body.trim().split('\n');
  expect(JSON.parse(ocsf[0]).class_uid).toBe(6003);
  expect((await get(server.url, '/export?format=pdf')).status).toBe(400);
});

test('G33: read-only, and only for its own Host', async () => {
  const post = await rawRequest(server.url, { method: 'POST', path: '/timeline' });
  expect(post.status).toBe(405);
  expect((await get(server.url, '/timeline', { host: 'evil.example:9191' })).status).toBe(403);
});

test('G33: off loopback it needs a token; with one, the bearer or the cookie /login sets', async () => {
  await expect(serveTrail({ trail: trail.dir, keys: [], host: '0.0.0.0', port: 0, token: null })).rejects.toThrow(/needs a token/);
  const token = 'a-long-enough-audit-token-1234';
  const s = await serveTrail({ trail: trail.dir, keys: [], host: '127.0.0.1', port: 0, token });
  await s.ready;
  try {
    expect((await get(s.url, '/timeline')).status).toBe(401);
    expect((await get(s.url, '/timeline', { authorization: `Bearer ${token}` })).status).toBe(200);
    const login = await get(s.url, `/login?token=${token}`);
    expect(login.status).toBe(303);
    const cookie = String(login.headers['set-cookie']).split(';')[0];
    expect(String(login.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict/);
    expect((await get(s.url, '/timeline', { cookie })).status).toBe(200);
    expect((await get(s.url, '/login?token=wrong')).status).toBe(401);
  } finally {
    await s.close();
  }
});

test('a byte changed in a middle record: the banner is red, names the first bad seq, and the export still works', async () => {
  const { dir: copy, seq } = tamperedCopy(trail.dir, '"decision":"deny"', '"decision":"allo"');
  const s = await serveTrail({ trail: copy, keys: [], host: '127.0.0.1', port: 0, token: null });
  await s.ready;
  try {
    const r = await get(s.url, '/timeline');
    expect(r.body).toMatch(
      new RegExp(
        `<div class="banner tampered" id="verdict" data-verdict="tampered" data-first-bad-seq="${seq + 1}"><strong>Tampered.</strong> The first problem is at seq ${seq + 1} `,
      ),
    );
    // The verifier finds the change at the next record, whose prev no longer matches, and names the changed one.
    expect(r.body).toContain(`(seq ${seq}): that record was modified`);
    expect((await get(s.url, '/export?format=jsonl')).body.trim().split('\n').length).toBeGreaterThan(5);
  } finally {
    await s.close();
  }
});

// The HTTP agent must not keep sockets open between tests.
afterAll(() => http.globalAgent.destroy());

test('G33: until the verdict is known every page shows the progress, and nothing of the trail; then the pages', async () => {
  let report: (p: OpenProgress) => void = () => undefined;
  let finish: (v: TrailView) => void = () => undefined;
  const held = new Promise<TrailView>((resolve) => (finish = resolve));
  const s = await serveTrail({
    trail: trail.dir,
    keys: [],
    host: '127.0.0.1',
    port: 0,
    token: null,
    open: (_dir, _keys, onProgress) => {
      report = onProgress;
      return held;
    },
  });
  try {
    report({ phase: 'verifying', done: 2, total: 16, records: 123456 });
    const r = await get(s.url, '/timeline');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/<meta http-equiv="refresh" content="1"\/>/);
    expect(r.body).toContain('<strong>Verifying…</strong> segment 3 of 16, 123456 records checked so far');
    expect(r.body).not.toContain('id="timeline"');
    expect((await get(s.url, '/export?format=jsonl')).status).toBe(503);
    expect((await get(s.url, '/assets/viewer.css')).status).toBe(200);
    finish(await server.ready);
    await s.ready;
    expect((await get(s.url, '/timeline')).status).toBe(200);
  } finally {
    await s.close();
  }
});

describe("the same view on a running gateway's admin listener, behind admin.token", () => {
  const TOKEN = 'admin-view-token-0123456789';
  test('G33: with admin.token the view is there behind it, verified with the gateway key; health stays open; without it there is no view', async () => {
    const { keyHash, startTestGateway, startUpstream } = await import('../helpers/harness');
    const upstream = await startUpstream();
    const yaml = (token: boolean) =>
      [
        'listen: 127.0.0.1:0',
        `admin: { listen: 127.0.0.1:0${token ? ', token: { env: ADMIN_VIEW_TOKEN }' : ''} }`,
        'policy: { path: ./policies, watch: false }',
        'audit: { path: ./audit }',
        `agents:\n  - id: bot\n    key_sha256: "${keyHash('admin-view-key')}"`,
        `routes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/`,
      ].join('\n');
    const gw = await startTestGateway({
      yaml: yaml(true),
      env: { ADMIN_VIEW_TOKEN: TOKEN },
      policies: { 'p.rego': 'package portcullis\n\ndecision := {"allow": input.agent.id == "bot", "reasons": ["bot"]}\n' },
    });
    try {
      for (let i = 0; i < 5; i++) await rawRequest(gw.gateway.url, { path: `/up/x${i}`, headers: { authorization: 'Bearer admin-view-key' } });
      const admin = gw.gateway.adminUrl!;
      expect((await get(admin, '/healthz')).status).toBe(200);
      expect((await get(admin, '/timeline')).status).toBe(401);
      const auth = { authorization: `Bearer ${TOKEN}` };
      let page = await get(admin, '/timeline', auth);
      for (const end = Date.now() + 15_000; page.status === 503 && Date.now() < end; page = await get(admin, '/timeline', auth))
        await new Promise((r) => setTimeout(r, 100));
      expect(page.status).toBe(200);
      // A live trail, checked with the gateway's own key: no checkpoint covers the newest records yet.
      expect(page.body).toMatch(/data-verdict="(verified|unverifiable)"/);
      expect(page.body).not.toContain('data-verdict="tampered"');
      expect(idsIn(page.body).length).toBeGreaterThanOrEqual(5);
      expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
      expect((await rawRequest(admin, { method: 'POST', path: '/timeline', headers: auth })).status).toBe(405);
    } finally {
      await gw.close();
    }
    const plain = await startTestGateway({ yaml: yaml(false), policies: { 'p.rego': 'package portcullis\n\ndecision := true\n' } });
    try {
      expect((await get(plain.gateway.adminUrl!, '/timeline')).status).toBe(404);
    } finally {
      await plain.close();
      await upstream.close();
    }
  });
});

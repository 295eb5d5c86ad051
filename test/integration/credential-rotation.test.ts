/**
 * Static secrets read from a file rotate without a restart (docs/credentials.md, Rotation):
 * the secret file is replaced the three ways deployments do it — written in place, renamed into
 * place (Vault Agent, CSI drivers), and swapped by Kubernetes' `..data` directory symlink —
 * while 1,000 calls run 16 at a time through a real gateway to a real upstream. Guarantee G26
 * (docs/guarantees.md).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { runExport } from '../../src/audit/offline/export';
import { runQuery } from '../../src/audit/offline/query';
import { verifyTrail } from '../../src/audit/offline/verify';
import { keyHash, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const AGENT_KEY = 'rotation-test-agent-key-0001';
const OLD = 'old-token-Aq3xZ81kPw0mLr5t';
const NEW = 'new-token-Jh7cVb24NsQe9yUd';
const POLICY = 'package portcullis\n\ndecision := {"allow": input.agent.id == "bot", "reasons": ["bot"]}\n';
const ROTATED_LOG = 'credential api rotated';

const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

/** An upstream that records the Authorization it got per decision id, and echoes both tokens on /echo. */
async function tokenUpstream(): Promise<Upstream> {
  return startUpstream((req, res) => {
    const text = req.url === '/echo' ? `an upstream echoing old=${OLD} new=${NEW}` : 'ok';
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
}

/** How the secret file is laid out and replaced. */
interface Layout {
  /** The path the config names, relative to the config directory. */
  readonly file: string;
  /** Creates the file with the old value. */
  setUp(dir: string): void;
  /** Replaces the value with the new one. */
  rotate(dir: string): void;
}

const inPlace: Layout = {
  file: 'secrets/token',
  setUp: (dir) => writeFileSync(path.join(dir, 'secrets/token'), `${OLD}\n`),
  rotate: (dir) => writeFileSync(path.join(dir, 'secrets/token'), `${NEW}\n`),
};

const byRename: Layout = {
  file: 'secrets/token',
  setUp: (dir) => writeFileSync(path.join(dir, 'secrets/token'), `${OLD}\n`),
  rotate(dir) {
    writeFileSync(path.join(dir, 'secrets/.token.tmp'), `${NEW}\n`);
    renameSync(path.join(dir, 'secrets/.token.tmp'), path.join(dir, 'secrets/token'));
  },
};

/** As the kubelet mounts a Secret: token -> ..data/token, ..data -> ..<timestamp>/, swapped by renaming a new ..data symlink over it. */
const kubernetes: Layout = {
  file: 'secrets/token',
  setUp(dir) {
    const s = path.join(dir, 'secrets');
    mkdirSync(path.join(s, '..2026_12_03_01'));
    writeFileSync(path.join(s, '..2026_12_03_01/token'), OLD);
    symlinkSync('..2026_12_03_01', path.join(s, '..data'));
    symlinkSync('..data/token', path.join(s, 'token'));
  },
  rotate(dir) {
    const s = path.join(dir, 'secrets');
    mkdirSync(path.join(s, '..2026_12_03_02'));
    writeFileSync(path.join(s, '..2026_12_03_02/token'), NEW);
    symlinkSync('..2026_12_03_02', path.join(s, '..data_tmp'));
    renameSync(path.join(s, '..data_tmp'), path.join(s, '..data'));
    rmSync(path.join(s, '..2026_12_03_01'), { recursive: true });
  },
};

async function startRotating(layout: Layout, graceS = 300): Promise<{ gw: TestGateway; upstream: Upstream }> {
  const upstream = await tokenUpstream();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-rotate-'));
  tmp.push(dir);
  mkdirSync(path.join(dir, 'secrets'));
  layout.setUp(dir);
  const yaml = [
    'listen: 127.0.0.1:0',
    'admin: { enabled: false }',
    'policy: { path: ./policies, watch: false }',
    'audit: { path: ./audit, durability: relaxed }',
    `agents:\n  - id: bot\n    key_sha256: "${keyHash(AGENT_KEY)}"`,
    `credentials:\n  api: { type: bearer, file: ${layout.file}, rotation_grace_s: ${graceS}, reload_poll_ms: 500 }`,
    `routes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/\n    credential: api`,
  ].join('\n');
  const gw = await startTestGateway({ yaml, policies: { 'p.rego': POLICY }, dir });
  return { gw, upstream };
}

function call(gw: TestGateway, agent: http.Agent, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${gw.gateway.url}${p}`, { agent, headers: { authorization: `Bearer ${AGENT_KEY}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** One call's view: what it was answered, whether the rotation had been observed when it started. */
interface CallSeen {
  readonly status: number;
  readonly afterObserved: boolean;
  readonly n: number;
}

/**
 * At least 1,000 calls, 16 at a time; the file is rotated after the 200th starts. Calls go on
 * until 1,000 are done and at least 100 started after the rotation showed in the log (the
 * provider logs it right after it swapped the attachment).
 */
async function callsAcrossRotation(gw: TestGateway, rotate: () => void): Promise<CallSeen[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const seen: CallSeen[] = [];
  let started = 0;
  let afterObserved = 0;
  let rotated = false;
  const worker = async () => {
    while ((started < 1000 || afterObserved < 100) && started < 20_000) {
      const n = started++;
      if (n === 200 && !rotated) {
        rotated = true;
        rotate();
      }
      const observed = rotated && gw.logs().includes(ROTATED_LOG);
      if (observed) afterObserved++;
      const r = await call(gw, agent, `/up/call?n=${n}`);
      seen.push({ status: r.status, afterObserved: observed, n });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  agent.destroy();
  return seen;
}

describe.each([
  ['written in place', inPlace],
  ['renamed into place', byRename],
  ['a Kubernetes ..data symlink swap', kubernetes],
])('G26 rotation of a file secret %s', (_name, layout) => {
  let gw: TestGateway;
  let upstream: Upstream;
  beforeAll(async () => {
    ({ gw, upstream } = await startRotating(layout));
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  test('G26: while 1,000 calls run, none fails, each carries the old or the new value, and calls after the rotation carry the new one', async () => {
    const seen = await callsAcrossRotation(gw, () => layout.rotate(gw.dir));
    expect(seen.length).toBeGreaterThanOrEqual(1000);
    expect(seen.filter((s) => s.status !== 200)).toEqual([]);

    const byN = new Map<string, string>();
    for (const r of upstream.received) byN.set(new URL(r.url, 'http://x').searchParams.get('n') ?? '', String(r.headers.authorization));
    expect(byN.size).toBe(seen.length);
    const values = new Set(byN.values());
    expect([...values].sort()).toEqual([`Bearer ${NEW}`, `Bearer ${OLD}`]);
    const lateOld = seen.filter((s) => s.afterObserved && byN.get(String(s.n)) !== `Bearer ${NEW}`);
    expect(lateOld).toEqual([]);
    expect(seen.filter((s) => s.afterObserved).length).toBeGreaterThanOrEqual(100);
    // The first 200 calls started before the file changed.
    for (let n = 0; n < 200; n++) expect(byN.get(String(n))).toBe(`Bearer ${OLD}`);

    // The trail: one credential_rotated naming both values by the fingerprints the decision records carry.
    const records = gw.audit();
    const rotations = records.filter((r) => r.type === 'credential_rotated');
    expect(rotations).toHaveLength(1);
    const [rotation] = rotations;
    expect(rotation).toMatchObject({ credential: 'api', credential_type: 'bearer', grace_s: 300 });
    expect(rotation.fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
    expect(rotation.previous_fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
    expect(rotation.fingerprint).not.toBe(rotation.previous_fingerprint);
    const sentByDecision = new Map(upstream.received.map((r) => [String(r.headers['x-portcullis-decision-id']), String(r.headers.authorization)]));
    const decisions = records.filter((r) => r.type === 'decision' && r.route === 'up');
    expect(decisions.length).toBe(seen.length);
    for (const d of decisions) {
      const sent = sentByDecision.get(d.decision_id);
      expect(d.credential_fingerprint).toBe(sent === `Bearer ${NEW}` ? rotation.fingerprint : rotation.previous_fingerprint);
    }
    // No value in the trail or the log.
    for (const text of [gw.auditText(), gw.logs()]) {
      expect(text).not.toContain(OLD);
      expect(text).not.toContain(NEW);
    }
  }, 120_000);

  test('G26: during the grace period an upstream echoing the old value (or the new one) has both masked', async () => {
    const agent = new http.Agent({ keepAlive: false });
    const r = await call(gw, agent, '/up/echo');
    expect(r.status).toBe(200);
    expect(r.body).toBe(`an upstream echoing old=${'*'.repeat(OLD.length)} new=${'*'.repeat(NEW.length)}`);
  });

  test('G26: the audit tools read the credential_rotated record: query finds it, verify passes', async () => {
    const hits: Record<string, unknown>[] = [];
    runQuery(gw.auditDir, { types: ['credential_rotated'] }, {}, (h) => hits.push(h.record));
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ type: 'credential_rotated', credential: 'api' });
    let csv = '';
    runExport(gw.auditDir, { format: 'csv', filter: { types: ['credential_rotated'] }, write: (c) => (csv += c) });
    expect(csv.trim().split('\n')).toHaveLength(2);
    expect(csv).toContain('credential_rotated');
    expect(readFileSync(path.join(gw.auditDir, 'audit.pub'), 'utf8')).toBeTruthy();
    expect(verifyTrail(gw.auditDir).problems).toEqual([]);
  });
});

describe('G26 rotation edge cases', () => {
  test('G26: an empty or unreadable new file keeps the value in use, logs an error, and no call fails', async () => {
    const { gw, upstream } = await startRotating(byRename);
    try {
      const agent = new http.Agent({ keepAlive: true });
      const file = path.join(gw.dir, 'secrets/token');
      writeFileSync(file, '');
      await waitForLog(gw, 'credential api: the secret file is empty; the value in use is kept');
      expect((await call(gw, agent, '/up/a')).status).toBe(200);
      rmSync(file);
      await waitForLog(gw, 'credential api: the secret file cannot be read (ENOENT); the value in use is kept');
      expect((await call(gw, agent, '/up/b')).status).toBe(200);
      expect(upstream.received.map((r) => r.headers.authorization)).toEqual([`Bearer ${OLD}`, `Bearer ${OLD}`]);
      expect(gw.audit().filter((r) => r.type === 'credential_rotated')).toEqual([]);
      // A good file after the bad ones rotates as usual.
      writeFileSync(file, NEW);
      await gw.waitForAudit((r) => r.type === 'credential_rotated', 5000);
      expect((await call(gw, agent, '/up/c')).status).toBe(200);
      expect(upstream.received[2].headers.authorization).toBe(`Bearer ${NEW}`);
      agent.destroy();
    } finally {
      await gw.close();
      await upstream.close();
    }
  });

  test('G26: once the grace period is over, only the new value is masked', async () => {
    const { gw, upstream } = await startRotating(byRename, 1);
    try {
      const agent = new http.Agent({ keepAlive: false });
      byRename.rotate(gw.dir);
      await gw.waitForAudit((r) => r.type === 'credential_rotated', 5000);
      const during = await call(gw, agent, '/up/echo');
      expect(during.body).not.toContain(OLD);
      // The grace is time itself: poll the echo until the old value shows (bounded).
      const until = Date.now() + 5000;
      let after = during;
      while (after.body.includes(`${'*'.repeat(OLD.length)} new`) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        after = await call(gw, agent, '/up/echo');
      }
      expect(after.body).toBe(`an upstream echoing old=${OLD} new=${'*'.repeat(NEW.length)}`);
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});

/** Waits for a line in the gateway's log (bounded). */
async function waitForLog(gw: TestGateway, text: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!gw.logs().includes(text)) {
    if (Date.now() > until) throw new Error(`no log line "${text}"`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

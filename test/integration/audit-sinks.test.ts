/**
 * Audit sinks against real receivers: a node:http webhook, a Splunk-HEC-shaped HTTP receiver,
 * and a real rsyslogd (Debian's package) over TCP and TLS. Each receiver goes away for a while;
 * once it is back, every record is delivered, and the gateway kept serving calls meanwhile.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { offsetFile } from '../../src/audit/sinks/sink-offset';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY = 'sink-agent-key';
const auth = { authorization: `Bearer ${KEY}` };
const POLICY = {
  'p.rego': `package portcullis

default decision := {"allow": false, "reasons": ["refusé par la politique de test ✓"]}

decision := {"allow": true, "reasons": ["bot"]} if {
\tinput.agent.id == "bot"
\tnot contains(input.request.path, "deny")
}
`,
};

let upstream: Upstream;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await upstream?.close();
});

function gatewayYaml(sinks: string, auditPath = './audit'): string {
  return [
    'listen: 127.0.0.1:0',
    'admin: { enabled: false }',
    'policy: { path: ./policies, watch: false }',
    'audit:',
    `  path: ${auditPath}`,
    '  sinks:',
    sinks,
    `agents:\n  - id: bot\n    key_sha256: "${keyHash(KEY)}"`,
    'routes:',
    `  - { name: up, prefix: /up/, upstream: "${upstream.url}/" }`,
    '',
  ].join('\n');
}

async function startGw(opts: { sinks: string; dir?: string; env?: NodeJS.ProcessEnv; files?: Record<string, string> }): Promise<TestGateway> {
  const gw = await startTestGateway({ yaml: gatewayYaml(opts.sinks), policies: POLICY, dir: opts.dir, env: opts.env, files: opts.files });
  cleanups.push(() => gw.close());
  return gw;
}

/** Makes `n` calls (every third one denied), asserting each is answered at once. */
async function calls(gw: TestGateway, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const started = Date.now();
    const r = await rawRequest(gw.gateway.url, { path: `/up/${tag}-${i}${i % 3 === 2 ? '-deny' : ''}`, headers: auth });
    expect(r.status).toBe(i % 3 === 2 ? 403 : 200);
    expect(Date.now() - started).toBeLessThan(1000);
  }
}

async function waitFor(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The seqs of the trail, 1..last. */
const trailSeqs = (gw: TestGateway) => gw.audit().map((r) => r.seq as number);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** An HTTP receiver whose answer can be switched, and which can go away and come back on its port. */
interface Receiver {
  readonly url: string;
  /** Bodies it acknowledged, in order. */
  readonly accepted: { headers: http.IncomingHttpHeaders; body: string }[];
  /** Requests answered with an error. */
  refused: number;
  mode: 'ok' | 'fail';
  down(): Promise<void>;
  up(): Promise<void>;
}

/** What a receiver answers; `ack: false` counts a 2xx as refused (HEC's "busy" answer). */
type Answer = { status: number; body: string; ack?: boolean };

async function startReceiver(handler: (req: http.IncomingMessage, body: string, r: Receiver) => Answer): Promise<Receiver> {
  let server: http.Server | null = null;
  let port = 0;
  const r: Receiver = {
    url: '',
    accepted: [],
    refused: 0,
    mode: 'ok',
    async down() {
      const s = server;
      server = null;
      if (s) {
        await new Promise<void>((res) => {
          s.close(() => res());
          s.closeAllConnections();
        });
      }
    },
    async up() {
      const s = http.createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => {
          const answer = handler(req, body, r);
          if (answer.status >= 200 && answer.status < 300 && answer.ack !== false) r.accepted.push({ headers: req.headers, body });
          else r.refused++;
          res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
        });
      });
      await new Promise<void>((res) => s.listen(port, '127.0.0.1', () => res()));
      port = (s.address() as AddressInfo).port;
      server = s;
    },
  };
  await r.up();
  (r as { url: string }).url = `http://127.0.0.1:${port}`;
  cleanups.push(() => r.down());
  return r;
}

const webhookReceiver = () =>
  startReceiver((_req, _body, r) => (r.mode === 'ok' ? { status: 200, body: '{}' } : { status: 503, body: '{"error":"maintenance"}' }));
const webhookSeqs = (r: Receiver) => r.accepted.flatMap((a) => (JSON.parse(a.body).records as { seq: number }[]).map((x) => x.seq));

test('G9: webhook: every record once, in seq order; through a 503 phase and a refused-connection phase the gateway keeps serving and nothing is lost', async () => {
  const receiver = await webhookReceiver();
  const gw = await startGw({
    sinks: `    - { name: hook, type: webhook, url: "${receiver.url}/audit", max_backoff_ms: 400, headers: { X-Source: portcullis-test } }`,
  });
  await calls(gw, 9, 'up');
  await waitFor('the first records', () => webhookSeqs(receiver).length === trailSeqs(gw).length);
  expect(webhookSeqs(receiver)).toEqual(trailSeqs(gw));
  expect(receiver.accepted[0].headers['content-type']).toBe('application/json');
  expect(receiver.accepted[0].headers['x-source']).toBe('portcullis-test');

  // The receiver answers 503: calls still succeed at once, the sink retries.
  receiver.mode = 'fail';
  await calls(gw, 9, 'during-503');
  await waitFor('a refused delivery', () => receiver.refused >= 2);
  const failing = gw.gateway.sinks.status()[0];
  expect(failing.consecutiveFailures).toBeGreaterThan(0);
  expect(failing.lastError).toMatch(/answered 503/);
  expect(failing.lagRecords).toBeGreaterThan(0);

  // The receiver is gone altogether (connection refused).
  await receiver.down();
  await calls(gw, 9, 'during-down');
  await new Promise((r) => setTimeout(r, 600));
  expect(gw.gateway.sinks.status()[0].lastError).toMatch(/ECONNREFUSED/);

  receiver.mode = 'ok';
  await receiver.up();
  await waitFor('every record after the outage', () => webhookSeqs(receiver).length >= trailSeqs(gw).length);
  // Only acknowledged batches count, so not even a duplicate: exactly the trail, in order.
  expect(webhookSeqs(receiver)).toEqual(trailSeqs(gw));
  expect(trailSeqs(gw)).toEqual(range(1, trailSeqs(gw).length));
  // The receiver counts a batch when it answers; the sink's status follows when the answer arrives.
  await waitFor('the sink healthy again', () => gw.gateway.sinks.status()[0].consecutiveFailures === 0);
  const healthy = gw.gateway.sinks.status()[0];
  expect(healthy).toMatchObject({ consecutiveFailures: 0, lastError: null, lagRecords: 0 });
  expect(gw.logs()).toContain('audit sink delivering again');
  const metrics = await gw.gateway.metrics.registry.metrics();
  expect(metrics).toMatch(new RegExp(`portcullis_audit_sink_delivered_seq\\{sink="hook"\\} ${trailSeqs(gw).at(-1)}`));
  expect(metrics).toMatch(/portcullis_audit_sink_errors_total\{sink="hook"\} [1-9]/);
});

test('G9: restart: delivery resumes from the persisted offset, nothing before it is sent again', async () => {
  const receiver = await webhookReceiver();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-sink-restart-'));
  const sinks = `    - { name: hook, type: webhook, url: "${receiver.url}/", format: ndjson, max_backoff_ms: 400 }`;
  const first = await startGw({ sinks, dir });
  await calls(first, 6, 'before');
  await waitFor('delivery before the outage', () => receiver.accepted.length > 0 && ndjsonSeqs(receiver).at(-1) === trailSeqs(first).at(-1));
  const deliveredBefore = ndjsonSeqs(receiver).length;
  receiver.mode = 'fail';
  await calls(first, 6, 'undelivered');
  await waitFor('a refused delivery', () => receiver.refused >= 1);
  const stopping = Date.now();
  await first.close();
  expect(Date.now() - stopping).toBeLessThan(5000); // a failing sink does not hold the shutdown
  const saved = JSON.parse(readFileSync(offsetFile(first.auditDir, 'hook'), 'utf8'));
  expect(saved.seq).toBe(deliveredBefore);
  const lastBefore = trailSeqs(first).at(-1)!;
  expect(lastBefore).toBeGreaterThan(saved.seq);

  receiver.mode = 'ok';
  const second = await startGw({ sinks, dir });
  await calls(second, 3, 'after');
  await waitFor('every record after the restart', () => ndjsonSeqs(receiver).at(-1) === trailSeqs(second).at(-1));
  const resent = ndjsonSeqs(receiver).slice(deliveredBefore);
  expect(resent[0]).toBe(saved.seq + 1);
  expect(ndjsonSeqs(receiver)).toEqual(trailSeqs(second));
  // ndjson carries the trail's lines byte for byte.
  expect(receiver.accepted.map((a) => a.body).join('')).toBe(second.auditText());
});

test('G9: a receiver that hangs: each attempt times out, calls are unaffected, shutdown does not wait for it, and the records go out after the restart', async () => {
  const hung: http.ServerResponse[] = [];
  let hang = true;
  const accepted: number[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (hang) return void hung.push(res);
      accepted.push(...(JSON.parse(body).records as { seq: number }[]).map((r) => r.seq));
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-sink-hang-'));
  const sinks = `    - { name: slow, type: webhook, url: "http://127.0.0.1:${(server.address() as AddressInfo).port}/", timeout_ms: 300, max_backoff_ms: 300 }`;
  const first = await startGw({ sinks, dir });
  await calls(first, 6, 'hung');
  await waitFor('a timed-out attempt', () => /timed out after 300 ms/.test(first.gateway.sinks.status()[0].lastError ?? ''));
  expect(hung.length).toBeGreaterThan(0);
  const stopping = Date.now();
  await first.close();
  expect(Date.now() - stopping).toBeLessThan(3000);
  expect(accepted).toEqual([]);
  hang = false;
  const second = await startGw({ sinks, dir });
  await waitFor('every record once the receiver answers', () => accepted.length >= trailSeqs(second).length);
  expect(accepted).toEqual(trailSeqs(second));
});

const ndjsonSeqs = (r: Receiver) =>
  r.accepted.flatMap((a) =>
    a.body
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l).seq as number),
  );

test('Splunk HEC: Authorization: Splunk <token>, one event object per record, code 0 acknowledges; the token is never in the trail or the logs', async () => {
  const token = 'hec-token-5c1e6a0d-secret';
  let busyOnce = true;
  const receiver = await startReceiver((req, body) => {
    if (req.headers.authorization !== `Splunk ${token}`) return { status: 401, body: '{"text":"Invalid authorization","code":3}' };
    if (req.url !== '/services/collector/event') return { status: 404, body: '{"text":"not found","code":404}' };
    // 200 without code 0 is not an acknowledgement: the batch must come again.
    if (busyOnce) {
      busyOnce = false;
      return { status: 200, body: '{"text":"Server is busy","code":9}', ack: false };
    }
    for (const line of body.trimEnd().split('\n')) {
      const e = JSON.parse(line);
      if (
        typeof e.time !== 'number' ||
        e.source !== 'portcullis' ||
        e.sourcetype !== 'portcullis:audit' ||
        e.host !== 'gw-test' ||
        typeof e.event?.seq !== 'number'
      ) {
        return { status: 400, body: '{"text":"Invalid data format","code":6}' };
      }
    }
    return { status: 200, body: '{"text":"Success","code":0}' };
  });
  const gw = await startGw({
    sinks: `    - { name: splunk, type: splunk_hec, url: "${receiver.url}/services/collector/event", token: { env: HEC_TOKEN }, host: gw-test, max_backoff_ms: 400 }`,
    env: { HEC_TOKEN: token },
  });
  await calls(gw, 6, 'hec');
  const events = () =>
    receiver.accepted.flatMap((a) =>
      a.body
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    );
  await waitFor('every event', () => events().length === trailSeqs(gw).length);
  expect(receiver.refused).toBe(1);
  expect(events().map((e) => e.event.seq)).toEqual(trailSeqs(gw));
  const first = events()[0];
  expect(first.time).toBeCloseTo(Date.parse(first.event.time) / 1000, 3);
  expect(gw.logs()).toMatch(/HEC code 9: Server is busy/);
  await gw.close();
  expect(gw.auditText()).not.toContain(token);
  expect(gw.logs()).not.toContain(token);
  expect(readFileSync(offsetFile(gw.auditDir, 'splunk'), 'utf8')).not.toContain(token);
});

// ---- syslog with a real rsyslogd ----

const RSYSLOGD = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p)) ?? 'rsyslogd';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A real rsyslogd in the foreground, listening with imtcp on 127.0.0.1:port, writing %msg% lines. */
class Rsyslog {
  private child: ChildProcess | null = null;
  readonly out: string;
  private readonly conf: string;

  constructor(
    readonly dir: string,
    readonly port: number,
    tls?: { cert: string; key: string },
  ) {
    this.out = path.join(dir, 'received.log');
    this.conf = path.join(dir, `rsyslog-${port}.conf`);
    const tlsGlobal = tls
      ? ` defaultNetstreamDriverCertFile="${tls.cert}" defaultNetstreamDriverKeyFile="${tls.key}" defaultNetstreamDriverCAFile="${tls.cert}"`
      : '';
    const tlsModule = tls ? ' streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"' : '';
    writeFileSync(
      this.conf,
      [
        `global(workDirectory="${dir}" maxMessageSize="256k"${tlsGlobal})`,
        `module(load="imtcp"${tlsModule})`,
        'template(name="rawmsg" type="string" string="%msg%\\n")',
        `ruleset(name="audit") { action(type="omfile" file="${this.out}" template="rawmsg") }`,
        `input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="audit")`,
        '',
      ].join('\n'),
    );
  }

  async start(): Promise<void> {
    const child = spawn(RSYSLOGD, ['-n', '-f', this.conf, '-i', path.join(this.dir, `rsyslogd-${this.port}.pid`)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const spawned = await new Promise<Error | null>((resolve) => {
      child.once('spawn', () => resolve(null));
      child.once('error', resolve);
    });
    if (spawned) throw new Error(`cannot start ${RSYSLOGD} (${spawned.message}); scripts/env.sh installs it (apt-get install rsyslog rsyslog-gnutls)`);
    this.child = child;
    const until = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (child.exitCode !== null || Date.now() > until) throw new Error(`rsyslogd did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  lines(): string[] {
    return existsSync(this.out) ? readFileSync(this.out, 'utf8').split('\n').filter(Boolean) : [];
  }
}

async function startRsyslog(dir: string, tls?: { cert: string; key: string }): Promise<Rsyslog> {
  const r = new Rsyslog(dir, await freePort(), tls);
  await r.start();
  cleanups.push(() => r.kill());
  return r;
}

/** The trail's lines. */
const trailLines = (gw: TestGateway) => gw.auditText().split('\n').filter(Boolean);
const seqsOf = (lines: string[]) => lines.map((l) => JSON.parse(l).seq as number);

test('G9: syslog over TCP to a real rsyslogd: every line arrives intact; rsyslogd killed and restarted on its port, every record is delivered', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-rsyslog-'));
  const rsyslog = await startRsyslog(dir);
  const gw = await startGw({ sinks: `    - { name: siem, type: syslog, address: "127.0.0.1:${rsyslog.port}", max_backoff_ms: 400, confirm_ms: 100 }` });
  await calls(gw, 9, 'syslog');
  await waitFor('rsyslog to write every record', () => rsyslog.lines().length === trailLines(gw).length);
  // %msg% is the record line, byte for byte (UTF-8 included).
  expect(rsyslog.lines()).toEqual(trailLines(gw));

  await rsyslog.kill();
  await calls(gw, 9, 'while-down');
  await new Promise((r) => setTimeout(r, 500));
  expect(gw.gateway.sinks.status()[0].lastError).toMatch(/ECONNREFUSED|closed the connection/);
  await rsyslog.start();
  await calls(gw, 3, 'after');
  await waitFor('every record after the restart', () => new Set(seqsOf(rsyslog.lines())).size === trailLines(gw).length);
  // At least once: nothing missing, and every line received is a line of the trail.
  expect([...new Set(seqsOf(rsyslog.lines()))].sort((a, b) => a - b)).toEqual(seqsOf(trailLines(gw)));
  const trail = new Set(trailLines(gw));
  for (const line of rsyslog.lines()) expect(trail.has(line)).toBe(true);
});

test('syslog over TLS to a real rsyslogd (gtls): delivered with the right CA, refused with a wrong one', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-rsyslog-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const otherCa = path.join(dir, 'other-ca.pem');
  const req = (k: string, c: string, cn: string) =>
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        k,
        '-out',
        c,
        '-days',
        '1',
        '-subj',
        `/CN=${cn}`,
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
  req(key, cert, 'localhost');
  req(path.join(dir, 'other-key.pem'), otherCa, 'someone-else');
  const rsyslog = await startRsyslog(dir, { cert, key });
  const gw = await startGw({
    sinks: [
      `    - { name: tls-ok, type: syslog, address: "127.0.0.1:${rsyslog.port}", tls: { ca: ${cert} }, max_backoff_ms: 400 }`,
      `    - { name: tls-wrong-ca, type: syslog, address: "127.0.0.1:${rsyslog.port}", tls: { ca: ${otherCa} }, max_backoff_ms: 400 }`,
    ].join('\n'),
  });
  await calls(gw, 6, 'tls');
  await waitFor('rsyslog to write every record', () => rsyslog.lines().length === trailLines(gw).length);
  expect(rsyslog.lines()).toEqual(trailLines(gw));
  const wrong = gw.gateway.sinks.status().find((s) => s.name === 'tls-wrong-ca')!;
  expect(wrong.deliveredSeq).toBe(0);
  expect(wrong.lastError).toMatch(/SELF_SIGNED|CERT|certificate/i);
});

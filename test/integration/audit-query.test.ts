/**
 * `portcullis audit query` and `portcullis audit export` on a real trail: a real gateway serves
 * calls from three agents on three routes (allowed and denied, before and after a time mark),
 * then the built CLI is run as an auditor would. Every expectation is derived from the calls the
 * test made (decision ids from the `x-portcullis-decision-id` answers), not from fixed counts.
 * The OCSF events are checked against the schema's required attributes listed, with their
 * sources, in test/fixtures/ocsf-api-activity.ts.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keyHash, rawRequest, startTestGateway, startUpstream } from '../helpers/harness';
import { OCSF_API_ACTIVITY, OCSF_AT_LEAST_ONE, OCSF_ENUMS, OCSF_REQUIRED, OCSF_REQUIRED_IF_PRESENT } from '../fixtures/ocsf-api-activity';

const CLI = path.resolve(__dirname, '../../dist/src/cli/main.js');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** What the test did, per call. */
interface Call {
  readonly id: string;
  readonly agent: string | null;
  readonly route: string | null;
  readonly method: string;
  readonly decision: 'allow' | 'deny';
  readonly phase: 1 | 2;
  readonly formula: boolean;
}

const AGENTS: Record<string, string> = { 'bot-a': 'key-a', 'bot-b': 'key-b', '@evil.bot': 'key-evil' };
const ROUTES = ['api', 'billing', 'open'];
const POLICY = `package portcullis

decision := {"allow": false, "reasons": ["=HYPERLINK(\\"http://attacker.example\\",\\"x\\")", "-2+3"]} if {
  endswith(input.request.path, "/formula")
} else := {"allow": true, "reasons": ["reads are fine"]} if {
  input.request.method == "GET"
} else := {"allow": false, "reasons": ["writes need approval"]}
`;

const calls: Call[] = [];
let trail: string;
let lines: string[];
let records: Record<string, any>[];
let mark: string;
let revision: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first`);
  const upstream = await startUpstream();
  const gw = await startTestGateway({
    yaml: [
      'listen: 127.0.0.1:0',
      'admin: { enabled: false }',
      'policy: { path: ./policies, watch: false }',
      'audit: { path: ./audit }',
      'credentials:',
      '  api-token: { type: bearer, env: TEST_API_TOKEN }',
      '  billing-key: { type: header, header: X-Api-Key, env: TEST_BILLING_KEY }',
      'agents:',
      ...Object.entries(AGENTS).map(([id, key]) => `  - id: "${id}"\n    key_sha256: "${keyHash(key)}"`),
      'routes:',
      `  - name: api\n    prefix: /api/\n    upstream: ${upstream.url}/\n    credential: api-token`,
      `  - name: billing\n    prefix: /billing/\n    upstream: ${upstream.url}/\n    credential: billing-key`,
      `  - name: open\n    prefix: /open/\n    upstream: ${upstream.url}/`,
      '',
    ].join('\n'),
    policies: { 'p.rego': POLICY },
    env: { TEST_API_TOKEN: 'api-secret-value', TEST_BILLING_KEY: 'billing-secret-value' },
  });
  const call = async (agent: string | null, key: string, route: string | null, method: string, phase: 1 | 2, formula = false) => {
    const r = await rawRequest(gw.gateway.url, {
      method,
      path: `/${route ?? 'nowhere'}/${formula ? 'formula' : `item-${calls.length}`}`,
      headers: { authorization: `Bearer ${key}` },
    });
    const id = String(r.headers['x-portcullis-decision-id']);
    calls.push({ id, agent, route, method, decision: r.status === 200 ? 'allow' : 'deny', phase, formula });
  };
  for (const phase of [1, 2] as const) {
    if (phase === 2) {
      await new Promise((r) => setTimeout(r, 30));
      mark = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 30));
    }
    for (const [agent, key] of Object.entries(AGENTS))
      for (const route of ROUTES) for (const method of ['GET', 'DELETE']) await call(agent, key, route, method, phase);
  }
  await call('@evil.bot', AGENTS['@evil.bot'], 'api', 'GET', 2, true);
  await call(null, 'no-such-key', 'api', 'GET', 2);
  // Refused before routing (an unknown key), its record still names the route the path matched.
  await call('bot-a', AGENTS['bot-a'], null, 'GET', 2);
  const allowed = calls.filter((c) => c.decision === 'allow').length;
  await gw.waitForAudit(() => gw.audit().filter((x) => x.type === 'outcome').length === allowed, 5000);
  await gw.close();
  await upstream.close();
  trail = gw.auditDir;
  lines = gw.auditText().split('\n').filter(Boolean);
  records = lines.map((l) => JSON.parse(l));
  revision = records.find((r) => r.type === 'decision')!.policy_revision;
}, 60000);

const ids = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).decision_id as string);
const expectIds = (stdout: string, want: Call[]) => expect(ids(stdout)).toEqual(want.map((c) => c.id));

test('the calls produced what the test expects (sanity of the scenario)', () => {
  expect(calls.filter((c) => c.decision === 'allow').length).toBeGreaterThan(3);
  expect(calls.filter((c) => c.decision === 'deny').length).toBeGreaterThan(3);
  // Decision records appear in call order: the order every query must keep.
  expect(records.filter((r) => r.type === 'decision').map((r) => r.decision_id)).toEqual(calls.map((c) => c.id));
});

describe('audit query', () => {
  test("by default: every decision record, as the trail's own lines (JSON Lines when piped)", async () => {
    const r = await cli(['audit', 'query', trail]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(lines.filter((l) => JSON.parse(l).type === 'decision'));
  });

  test.each([
    ['--agent', ['--agent', 'bot-b'], (c: Call) => c.agent === 'bot-b'],
    ['--agent twice', ['--agent', 'bot-b', '--agent', '@evil.bot'], (c: Call) => c.agent === 'bot-b' || c.agent === '@evil.bot'],
    ['--route', ['--route', 'billing'], (c: Call) => c.route === 'billing'],
    ['--decision deny', ['--decision', 'deny'], (c: Call) => c.decision === 'deny'],
    ['--decision allow', ['--decision', 'allow'], (c: Call) => c.decision === 'allow'],
    [
      '--reason (case-insensitive, in reasons)',
      ['--reason', 'APPROVAL'],
      (c: Call) => c.decision === 'deny' && c.agent !== null && c.route !== null && !c.formula,
    ],
    ['--reason (in the code)', ['--reason', 'pc_unknown_agent'], (c: Call) => c.agent === null],
    ['--since (ISO time)', ['--since', '__MARK__'], (c: Call) => c.phase === 2],
    ['--until (ISO time)', ['--until', '__MARK__'], (c: Call) => c.phase === 1],
    ['--since 1h (relative)', ['--since', '1h'], () => true],
    ['--until 1h (relative)', ['--until', '1h'], () => false],
    [
      'agent, route and decision together',
      ['--agent', 'bot-a', '--route', 'api', '--decision', 'allow'],
      (c: Call) => c.agent === 'bot-a' && c.route === 'api' && c.decision === 'allow',
    ],
  ])('%s selects exactly the matching decisions', async (_name, args, pick) => {
    const r = await cli(['audit', 'query', trail, ...args.map((a) => (a === '__MARK__' ? mark : a)), '--format', 'jsonl']);
    expect(r.code).toBe(0);
    expectIds(r.stdout, calls.filter(pick));
  });

  test("--decision-id returns that call's decision and its outcome record", async () => {
    const allowed = calls.find((c) => c.decision === 'allow' && c.agent === 'bot-b')!;
    const r = await cli(['audit', 'query', trail, '--decision-id', allowed.id]);
    const got = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(got.map((x) => [x.type, x.decision_id])).toEqual([
      ['decision', allowed.id],
      ['outcome', allowed.id],
    ]);
    const denied = calls.find((c) => c.decision === 'deny')!;
    expect(ids((await cli(['audit', 'query', trail, '--decision-id', denied.id])).stdout)).toEqual([denied.id]);
  });

  test('--type selects other record types; --type all returns every line', async () => {
    const outcomes = await cli(['audit', 'query', trail, '--type', 'outcome']);
    expect(outcomes.stdout.split('\n').filter(Boolean)).toEqual(lines.filter((l) => JSON.parse(l).type === 'outcome'));
    const all = await cli(['audit', 'query', trail, '--type', 'all']);
    expect(all.stdout.split('\n').filter(Boolean)).toEqual(lines);
    const lifecycle = await cli(['audit', 'query', trail, '--type', 'gateway_start', '--type', 'gateway_stop']);
    expect(
      lifecycle.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).type),
    ).toEqual(['gateway_start', 'gateway_stop']);
  });

  test('--limit stops after N records', async () => {
    const r = await cli(['audit', 'query', trail, '--decision', 'allow', '--limit', '2']);
    expectIds(r.stdout, calls.filter((c) => c.decision === 'allow').slice(0, 2));
  });

  test("--with-outcome adds each allowed decision's upstream status and latency", async () => {
    const r = await cli(['audit', 'query', trail, '--agent', 'bot-a', '--with-outcome']);
    const got = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(got.map((x) => x.decision_id)).toEqual(calls.filter((c) => c.agent === 'bot-a').map((c) => c.id));
    for (const x of got) {
      const outcome = records.find((o) => o.type === 'outcome' && o.decision_id === x.decision_id)!;
      if (x.decision === 'allow') expect(x.outcome).toEqual({ status: outcome.status, latency_ms: outcome.latency_ms, seq: outcome.seq });
      else expect(x.outcome).toBeUndefined();
    }
  });

  test('--format csv: RFC 4180 that parses back to the records; formula-like values neutralised', async () => {
    const r = await cli(['audit', 'query', trail, '--format', 'csv', '--with-outcome']);
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\r\n')).toBe(true);
    const [header, ...rows] = parseCsv(r.stdout);
    expect(header.slice(0, 4)).toEqual(['seq', 'time', 'type', 'decision_id']);
    expect(rows.map((row) => row[header.indexOf('decision_id')])).toEqual(calls.map((c) => c.id));
    const col = (row: string[], name: string) => row[header.indexOf(name)];
    for (const row of rows) {
      const rec = records.find((x) => x.type === 'decision' && x.decision_id === col(row, 'decision_id'))!;
      expect(Number(col(row, 'seq'))).toBe(rec.seq);
      expect(col(row, 'route')).toBe(rec.route ?? '');
      expect(col(row, 'policy_revision')).toBe(rec.policy_revision ?? '');
      expect(col(row, 'credential')).toBe(rec.credential ?? '');
      // Agent ids may start with @ or -: a spreadsheet would read them as formulas.
      expect(col(row, 'agent')).toBe(rec.agent === null ? '' : rec.agent.startsWith('@') ? `'${rec.agent}` : rec.agent);
    }
    const formula = rows.find((row) => col(row, 'decision_id') === calls.find((c) => c.formula)!.id)!;
    expect(col(formula, 'reasons')).toBe(`'=HYPERLINK("http://attacker.example","x"); -2+3`);
    expect(rows.every((row) => row.every((cell) => !/^[=+\-@\t\r]/.test(cell)))).toBe(true);
  });

  test('--format table shows which credential each allowed call got and which policy revision decided', async () => {
    const r = await cli(['audit', 'query', trail, '--format', 'table', '--route', 'api', '--decision', 'allow']);
    const out = r.stdout.split('\n').filter(Boolean);
    expect(out.length).toBeGreaterThan(1);
    for (const line of out.slice(1)) {
      expect(line).toContain('api-token');
      expect(line).toContain(revision.slice(0, 18));
    }
  });

  test('--format table: a header and one aligned line per record; the count on stderr', async () => {
    const r = await cli(['audit', 'query', trail, '--format', 'table', '--route', 'open']);
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n').filter(Boolean);
    expect(out[0]).toMatch(/^TIME +SEQ +AGENT +ROUTE +METHOD +PATH +DECISION +REASON +CREDENTIAL +POLICY +DECISION_ID$/);
    const want = calls.filter((c) => c.route === 'open');
    expect(out.length).toBe(want.length + 1);
    for (const [i, c] of want.entries()) expect(out[i + 1]).toContain(c.id);
    expect(r.stderr).toBe(`${want.length} records\n`);
  });

  test('nothing matching is not an error: exit 0, no output (an empty table says 0 records)', async () => {
    const r = await cli(['audit', 'query', trail, '--agent', 'nobody']);
    expect(r).toMatchObject({ code: 0, stdout: '' });
    const t = await cli(['audit', 'query', trail, '--agent', 'nobody', '--format', 'table']);
    expect(t.code).toBe(0);
    expect(t.stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect(t.stderr).toBe('0 records\n');
  });

  test.each([
    ['a time that is not one', ['--since', 'yesterday'], /not a time/],
    ['an unknown format', ['--format', 'xml'], /--format must be/],
    ['an unknown decision', ['--decision', 'maybe'], /allow or deny/],
    ['a negative limit', ['--limit', '-1'], /--limit|argument/],
    ['since after until', ['--since', '2026-05-02', '--until', '2026-05-01'], /before --until/],
    ['an unknown option', ['--agnet', 'x'], /^portcullis: unknown option --agnet; did you mean --agent\?$/m],
  ])('a usage error exits 2 with a message: %s', async (_name, args, message) => {
    const r = await cli(['audit', 'query', trail, ...args]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  test('a missing PATH or one that does not exist exits 2', async () => {
    expect((await cli(['audit', 'query'])).code).toBe(2);
    const r = await cli(['audit', 'query', path.join(os.tmpdir(), 'no-such-trail-dir')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ENOENT/);
  });

  test('--help prints the options', async () => {
    const r = await cli(['audit', 'query', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: portcullis audit query PATH/);
    for (const o of [
      '--since',
      '--until',
      '--agent',
      '--route',
      '--tool',
      '--decision',
      '--reason',
      '--decision-id',
      '--type',
      '--format',
      '--with-outcome',
      '--limit',
    ])
      expect(r.stdout).toContain(o);
  });
});

describe('audit export', () => {
  const decisionRecords = () => records.filter((r) => r.type === 'decision');
  const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
  const get = (obj: any, dotted: string) => dotted.split('.').reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);

  /** Resolves a fixture path with `[]` (every element of an array) to the objects it names. */
  const objectsAt = (event: any, p: string): any[] => {
    let current: any[] = [event];
    for (const part of p.split('.')) {
      const many = part.endsWith('[]');
      const key = many ? part.slice(0, -2) : part;
      current = current.flatMap((o) => {
        const v = o?.[key];
        if (v === undefined) return [];
        return many ? (v as any[]) : [v];
      });
    }
    return current;
  };

  /** An independent RFC 8785 serialization for the test: sort members recursively, then stringify. */
  const jcs = (v: any): string => {
    const sort = (x: any): any =>
      Array.isArray(x)
        ? x.map(sort)
        : x && typeof x === 'object'
          ? Object.fromEntries(
              Object.keys(x)
                .sort()
                .map((k) => [k, sort(x[k])]),
            )
          : x;
    return JSON.stringify(sort(v));
  };

  test('ocsf: every event is API Activity with every attribute the schema requires', async () => {
    const r = await cli(['audit', 'export', trail, '--format', 'ocsf']);
    expect(r.code).toBe(0);
    const events = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.metadata.uid)).toEqual(calls.map((c) => c.id));
    for (const e of events) {
      for (const p of OCSF_REQUIRED) expect({ p, present: get(e, p) !== undefined && get(e, p) !== null }).toEqual({ p, present: true });
      for (const [obj, attrs] of Object.entries(OCSF_REQUIRED_IF_PRESENT))
        for (const o of objectsAt(e, obj)) for (const a of attrs) expect({ obj, a, present: o[a] !== undefined }).toEqual({ obj, a, present: true });
      for (const [obj, alternatives] of Object.entries(OCSF_AT_LEAST_ONE))
        for (const o of objectsAt(e, obj)) expect({ obj, ok: alternatives.some((a) => o[a] !== undefined) }).toEqual({ obj, ok: true });
      for (const [attr, allowed] of Object.entries(OCSF_ENUMS)) if (e[attr] !== undefined) expect(allowed).toContain(e[attr]);
      expect(e).toMatchObject(OCSF_API_ACTIVITY);
      expect(e.type_uid).toBe(OCSF_API_ACTIVITY.class_uid * 100 + e.activity_id);
      expect(e.metadata.version).toBe('1.9.0');
      expect(typeof e.time).toBe('number');
    }
  });

  test("ocsf: allow and deny, the method's activity, the policy revision and the agent come from the record", async () => {
    const events = (await cli(['audit', 'export', trail, '--format', 'ocsf'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    events.forEach((e, i) => {
      const c = calls[i];
      const rec = decisionRecords()[i];
      expect(e.activity_id).toBe(c.method === 'GET' ? 2 : 4);
      expect([e.action_id, e.action, e.disposition_id, e.status_id]).toEqual(c.decision === 'allow' ? [1, 'Allowed', 1, 1] : [2, 'Denied', 2, 2]);
      // Calls refused before the policy ran (unknown agent, no route) have no revision.
      expect(e.policy.uid).toBe(rec.policy_revision ?? undefined);
      // No policy was applied to a call refused before it ran.
      expect(e.policy.is_applied).toBe(typeof rec.policy_revision === 'string');
      if (!c.agent) expect(e.policy.is_applied).toBe(false);
      if (c.agent && c.route) expect(e.policy.uid).toBe(revision);
      expect(e.time).toBe(Date.parse(rec.time));
      if (c.agent) expect(e.actor.user.uid).toBe(c.agent);
      if (c.route) expect(e.api.service.name).toBe(c.route);
      else expect(e.api.service).toBeUndefined();
      expect(e.api.request.uid).toBe(c.id);
      expect(e.http_request.http_method).toBe(c.method);
      if (c.decision === 'deny') expect(e.status_code).toBe(rec.code);
      const outcome = records.find((o) => o.type === 'outcome' && o.decision_id === c.id)!;
      expect(e.http_response?.code).toBe(c.decision === 'allow' ? outcome.status : rec.status);
      expect(e.unmapped.portcullis.credential).toBe(rec.credential);
    });
  });

  test('ocsf: each event leads back to its exact trail line, and the events form a verifiable chain', async () => {
    const events = (await cli(['audit', 'export', trail, '--format', 'ocsf', '--raw'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const segment = readdirSync(trail).find((f) => f.endsWith('.jsonl'))!;
    const segmentLines = readFileSync(path.join(trail, segment), 'utf8').split('\n');
    let prev: any = null;
    for (const e of events) {
      const u = e.unmapped.portcullis;
      const line = segmentLines[u.line - 1];
      expect(u.segment).toBe(segment);
      expect(e.raw_data).toBe(line);
      expect(e.metadata.sequence).toBe(JSON.parse(line).seq);
      expect(u.prev).toBe(JSON.parse(line).prev);
      // raw_data_hash is what the next trail record's prev holds.
      expect(e.raw_data_hash).toMatchObject({ algorithm_id: 3, value: sha256(line) });
      expect(JSON.parse(segmentLines[u.line]).prev).toBe(sha256(line));
      // Attestation: fingerprint over the event without itself; prev_event names the previous one.
      const att = e.attestation_list[0];
      const { fingerprint, ...rest } = att;
      expect(sha256(jcs({ ...e, attestation_list: [rest] }))).toBe(fingerprint.value);
      if (prev === null) expect(att.prev_event).toBeUndefined();
      else
        expect(att.prev_event).toMatchObject({
          uid: prev.metadata.uid,
          type_uid: prev.type_uid,
          fingerprint: { value: prev.attestation_list[0].fingerprint.value },
        });
      expect(att.chain_uid).toBe(events[0].attestation_list[0].chain_uid);
      prev = e;
    }
  });

  test('ecs: each document has the ECS fields a SIEM needs, traced to the record', async () => {
    const r = await cli(['audit', 'export', trail, '--format', 'ecs']);
    expect(r.code).toBe(0);
    const docs = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(docs.map((d) => d.event.id)).toEqual(calls.map((c) => c.id));
    docs.forEach((d, i) => {
      const c = calls[i];
      const rec = decisionRecords()[i];
      expect(d['@timestamp']).toBe(rec.time);
      expect(d.ecs.version).toMatch(/^\d+\.\d+\.\d+$/);
      expect(d.event).toMatchObject({
        kind: 'event',
        category: ['api'],
        type: [c.decision === 'allow' ? 'allowed' : 'denied'],
        outcome: c.decision === 'allow' ? 'success' : 'failure',
        sequence: rec.seq,
      });
      expect(d.rule.id).toBe(rec.code ?? 'allow');
      expect(d.rule.version).toBe(rec.policy_revision ?? undefined);
      if (c.agent) expect(d.user).toEqual({ id: c.agent, name: c.agent });
      else expect(d.user).toBeUndefined();
      expect(d.url.path).toBe(rec.path);
      expect(d.http.request.method).toBe(c.method);
      expect(d.portcullis).toMatchObject({ seq: rec.seq, prev: rec.prev, credential: rec.credential });
      expect(d.event.hash).toBe(sha256(lines[rec.seq - 1]));
    });
  });

  test('csv with --output: the query CSV columns, written to the file', async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'portcullis-export-')), 'denies.csv');
    const r = await cli(['audit', 'export', trail, '--format', 'csv', '--decision', 'deny', '--output', out]);
    expect(r.code).toBe(0);
    const want = calls.filter((c) => c.decision === 'deny');
    expect(r.stderr).toBe(`exported ${want.length} records to ${out}\n`);
    const [header, ...rows] = parseCsv(readFileSync(out, 'utf8'));
    const queryHeader = parseCsv((await cli(['audit', 'query', trail, '--format', 'csv', '--limit', '0'])).stdout)[0];
    expect(header).toEqual(queryHeader);
    expect(rows.map((row) => row[header.indexOf('decision_id')])).toEqual(want.map((c) => c.id));
  });

  test('filters apply to exports too', async () => {
    const r = await cli(['audit', 'export', trail, '--format', 'ocsf', '--agent', 'bot-a', '--since', mark]);
    expect(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).metadata.uid),
    ).toEqual(calls.filter((c) => c.agent === 'bot-a' && c.phase === 2).map((c) => c.id));
  });

  test.each([
    ['no --format', [], /needs --format/],
    ['an unknown format', ['--format', 'cef'], /--format must be/],
    ['ocsf of a non-decision type', ['--format', 'ocsf', '--type', 'outcome'], /decision records only/],
  ])('a usage error exits 2: %s', async (_name, args, message) => {
    const r = await cli(['audit', 'export', trail, ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

/** A strict RFC 4180 parser for the test (CRLF records, quoted fields with doubled quotes). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  while (i < text.length) {
    let cell = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q === -1) throw new Error('unterminated quoted field');
        cell += text.slice(i, q);
        if (text[q + 1] === '"') {
          cell += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
    } else {
      const m = /[,\r]/.exec(text.slice(i));
      const end = m ? i + m.index : text.length;
      cell = text.slice(i, end);
      if (cell.includes('"') || cell.includes('\n')) throw new Error(`bad unquoted field ${JSON.stringify(cell)}`);
      i = end;
    }
    row.push(cell);
    if (text[i] === ',') i++;
    else if (text.startsWith('\r\n', i)) {
      rows.push(row);
      row = [];
      i += 2;
    } else if (i < text.length) throw new Error(`unexpected ${JSON.stringify(text[i])} at ${i}`);
  }
  if (row.length) throw new Error('last record not terminated by CRLF');
  return rows;
}

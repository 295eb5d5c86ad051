/**
 * Pure logic of audit queries on small trails the test writes itself: the reader's chunk
 * boundaries and torn tails, the prefilter, the MCP tool filter, the outcome join's ordering and
 * bound, time bounds, CSV quoting and canonical JSON (RFC 8785).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalJson } from '../../src/audit/canonical-json';
import { csvLine, neutraliseFormula, tableLine, toRow } from '../../src/audit/offline/output-formats';
import { OUTCOME_WAIT_LIMIT, QueryOptionError, parseTimeBound, runQuery, type AuditFilter, type QueryHit } from '../../src/audit/offline/query';
import { GENESIS_HASH, serializeRecord, type ChainedRecord } from '../../src/audit/record';
import { readTrail } from '../../src/audit/offline/trail-reader';

/** Writes records as a chained trail (split into segments of `perSegment`); returns the dir. */
function writeTrail(events: Record<string, unknown>[], perSegment = Infinity, tail = ''): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-q-'));
  let prev = GENESIS_HASH;
  const segments: string[] = [];
  events.forEach((e, i) => {
    const line = serializeRecord({ seq: i + 1, prev, ...e } as unknown as ChainedRecord);
    prev = createHash('sha256').update(line).digest('hex');
    const s = Math.floor(i / perSegment);
    segments[s] = `${segments[s] ?? ''}${line}\n`;
  });
  for (const [i, text] of segments.entries()) {
    writeFileSync(path.join(dir, `audit-${String(i + 1).padStart(8, '0')}.jsonl`), i === segments.length - 1 ? `${text}${tail}` : text);
  }
  return dir;
}

const T0 = Date.parse('2026-05-01T00:00:00Z');
const decision = (i: number, extra: Record<string, unknown> = {}) => ({
  type: 'decision',
  time: new Date(T0 + i * 60_000).toISOString(),
  decision_id: `d${i}`,
  agent: `agent-${i % 3}`,
  route: 'r',
  method: 'GET',
  path: `/p/${i}`,
  decision: 'allow',
  reasons: [],
  policy_revision: 'rev',
  credential: null,
  ...extra,
});
const outcome = (i: number) => ({ type: 'outcome', time: new Date(T0 + i * 60_000).toISOString(), decision_id: `d${i}`, status: 200, latency_ms: i });

function query(dir: string, filter: AuditFilter, options: { limit?: number; withOutcome?: boolean } = {}): QueryHit[] {
  const hits: QueryHit[] = [];
  runQuery(dir, filter, options, (h) => hits.push(h));
  return hits;
}

describe('readTrail', () => {
  test('lines across segments in order, with file and line numbers, whatever the chunk size; multi-byte text split across chunks intact', () => {
    const events = Array.from({ length: 30 }, (_, i) => decision(i, { path: `/é€😀/${'x'.repeat(i * 7)}` }));
    const dir = writeTrail(events, 7);
    for (const chunkBytes of [1, 5, 64, 1 << 20]) {
      const got = [...readTrail(dir, { chunkBytes })];
      expect(got.map((l) => JSON.parse(l.text).path)).toEqual(events.map((e) => e.path));
      expect(got[7]).toMatchObject({ line: 1, file: path.join(dir, 'audit-00000002.jsonl') });
      expect(got[8].line).toBe(2);
    }
  });

  test('an incomplete last line (a write in progress or a torn tail) is not returned', () => {
    const dir = writeTrail([decision(1), decision(2)], Infinity, '{"seq":3,"prev":"ab');
    expect([...readTrail(dir)].map((l) => JSON.parse(l.text).seq)).toEqual([1, 2]);
  });

  test('the prefilter keeps exactly the lines containing a needle, even with tiny chunks', () => {
    const dir = writeTrail(Array.from({ length: 40 }, (_, i) => decision(i)));
    for (const chunkBytes of [3, 100, 1 << 20]) {
      const got = [...readTrail(dir, { anyOf: ['"decision_id":"d7"', '"decision_id":"d31"'], chunkBytes })];
      expect(got.map((l) => [JSON.parse(l.text).decision_id, l.line])).toEqual([
        ['d7', 8],
        ['d31', 32],
      ]);
    }
  });
});

describe('runQuery', () => {
  test('--tool matches mcp.tool; records without mcp, unknown types and unknown fields are tolerated', () => {
    const dir = writeTrail([
      { type: 'checkpoint', time: new Date(T0).toISOString(), size: 0, root: 'x', future_field: { a: 1 } },
      decision(1, { mcp: { method: 'tools/call', tool: 'delete_repo', arguments: { name: 'x' } } }),
      decision(2),
      decision(3, { mcp: { method: 'tools/call', tool: 'list_repos' } }),
      decision(4, { mcp: { method: 'tools/call', tool: 'delete_repo' }, new_field: true }),
    ]);
    expect(query(dir, { tools: ['delete_repo'] }).map((h) => h.record.decision_id)).toEqual(['d1', 'd4']);
    expect(query(dir, { tools: ['delete_repo', 'list_repos'] }).map((h) => h.record.decision_id)).toEqual(['d1', 'd3', 'd4']);
    expect(query(dir, { types: 'all' }).map((h) => h.record.type)).toEqual(['checkpoint', 'decision', 'decision', 'decision', 'decision']);
    expect(toRow(query(dir, { tools: ['list_repos'] })[0]).tool).toBe('list_repos');
  });

  test('the prefilter never changes the answer: a needle inside another field is re-checked', () => {
    const dir = writeTrail([decision(1, { agent: 'bob', reasons: ['looks like "agent":"eve"'] }), decision(2, { agent: 'eve' })]);
    expect(query(dir, { agents: ['eve'] }).map((h) => h.record.decision_id)).toEqual(['d2']);
  });

  test('time bounds: since inclusive, until exclusive', () => {
    const dir = writeTrail(Array.from({ length: 10 }, (_, i) => decision(i)));
    const hits = query(dir, { since: T0 + 3 * 60_000, until: T0 + 6 * 60_000 });
    expect(hits.map((h) => h.record.decision_id)).toEqual(['d3', 'd4', 'd5']);
  });

  test('the outcome join keeps trail order, even when outcomes arrive out of order or never', () => {
    const dir = writeTrail([
      decision(1),
      decision(2),
      decision(3, { decision: 'deny', code: 'PC_POLICY_DENIED' }),
      outcome(2),
      decision(4),
      outcome(1),
      outcome(4),
      decision(5),
    ]);
    const hits = query(dir, {}, { withOutcome: true });
    expect(hits.map((h) => [h.record.decision_id, h.outcome?.status ?? null])).toEqual([
      ['d1', 200],
      ['d2', 200],
      ['d3', null],
      ['d4', 200],
      ['d5', null],
    ]);
    expect(hits[0].outcome).toEqual({ status: 200, latency_ms: 1, seq: 6 });
  });

  test('the outcome join is bounded: a decision whose outcome never comes is emitted without it', () => {
    const events: Record<string, unknown>[] = [decision(0)];
    for (let i = 1; i <= OUTCOME_WAIT_LIMIT + 5; i++) events.push(decision(i, { decision: 'deny' }));
    events.push(outcome(0));
    const order: string[] = [];
    runQuery(writeTrail(events), {}, { withOutcome: true }, (h) => order.push(`${h.record.decision_id}${h.outcome ? '+' : ''}`));
    expect(order[0]).toBe('d0'); // emitted once the queue overflowed, before its late outcome
    expect(order).toHaveLength(OUTCOME_WAIT_LIMIT + 6);
  });

  test('limit stops the scan', () => {
    const dir = writeTrail(Array.from({ length: 10 }, (_, i) => decision(i)));
    expect(query(dir, {}, { limit: 3 }).map((h) => h.record.decision_id)).toEqual(['d0', 'd1', 'd2']);
    expect(query(dir, {}, { limit: 0 })).toEqual([]);
  });
});

describe('parseTimeBound', () => {
  const now = Date.parse('2026-05-08T12:00:00Z');
  test.each([
    ['30s', now - 30_000],
    ['15m', now - 15 * 60_000],
    ['24h', now - 86_400_000],
    ['7d', now - 7 * 86_400_000],
    ['2w', now - 14 * 86_400_000],
    ['2026-05-01', Date.parse('2026-05-01T00:00:00Z')],
    ['2026-05-01T10:30:00Z', Date.parse('2026-05-01T10:30:00Z')],
    ['2026-05-01T10:30:00.250+02:00', Date.parse('2026-05-01T08:30:00.250Z')],
  ])('%s', (text, want) => expect(parseTimeBound(text, now)).toBe(want));

  test.each(['yesterday', '7 days', '-1d', '2026-13-45', '1y', ''])('rejects %j', (text) => expect(() => parseTimeBound(text, now)).toThrow(QueryOptionError));
});

describe('CSV and table', () => {
  test.each([
    ['=1+1', "'=1+1"],
    ['+1', "'+1"],
    ['-1', "'-1"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\tx', "'\tx"],
    ['\rx', "'\rx"],
    ['a=b', 'a=b'],
    ['/path', '/path'],
  ])('neutraliseFormula(%j)', (value, want) => expect(neutraliseFormula(value)).toBe(want));

  test('quoting per RFC 4180: commas, quotes and line breaks; numbers stay numbers', () => {
    const hit = {
      record: { seq: 7, type: 'decision', decision_id: 'a,b', agent: 'say "hi"', path: '/x\r\ny', reasons: ['=cmd', 'two'], status: 403 },
      source: { file: 'f', line: 1, text: '' },
    };
    const line = csvLine(toRow(hit as unknown as QueryHit));
    expect(line).toBe('7,,decision,"a,b","say ""hi""",,,"/x\r\ny",,,,"\'=cmd; two",403,,,\r\n');
  });

  test('the table replaces control characters so a record cannot rewrite the terminal', () => {
    const hit = { record: { seq: 1, type: 'decision', agent: 'bot\u001b[2J', path: '/a\u202ez', decision: 'deny' }, source: { file: 'f', line: 1, text: '' } };
    const line = tableLine(toRow(hit as unknown as QueryHit), false);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may reach the terminal
    expect(line).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/);
    expect(line).toContain('bot?[2J');
  });
});

describe('canonicalJson (RFC 8785)', () => {
  test('members sorted by UTF-16 code units at every depth; no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null }, '\u20ac': 1, '\r': 2, A: 3 })).toBe(
      '{"\\r":2,"A":3,"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1,"€":1}',
    );
  });

  test('integer-like member names are ordered as strings, not as JavaScript orders them', () => {
    expect(canonicalJson({ '10': 'a', '9': 'b', x: { '2': 1, '1': 2 } })).toBe('{"10":"a","9":"b","x":{"1":2,"2":1}}');
  });

  test('numbers and strings as ECMAScript writes them; undefined members dropped', () => {
    expect(canonicalJson({ n: [1e21, 0.1, -0, 333333333.3333333], s: 'é\u2028"\\', u: undefined })).toBe(
      '{"n":[1e+21,0.1,0,333333333.3333333],"s":"é\u2028\\"\\\\"}',
    );
  });

  test('objects already in order are serialised as they are', () => {
    const v = { a: 1, b: { c: [1, 2], d: 'x' } };
    expect(canonicalJson(v)).toBe(JSON.stringify(v));
  });
});

/**
 * What a candidate reads of its input (src/policy/replay/input-refs.ts), on the AST the real OPA
 * prints (`opa parse --format json`), and the overlap rule that makes a record undeterminable.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstOverlap, formatInputPath, inputReadsOf, overlaps, projectInput } from '../../src/policy/replay/input-refs';
import { OPA } from '../helpers/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-refs-'));
let n = 0;

/** The paths (as input.a.b) and builtins the real OPA parse of `body` shows. */
function reads(body: string): { paths: string[]; nondeterministic: readonly string[] } {
  const file = path.join(dir, `m${n++}.rego`);
  writeFileSync(file, `package portcullis\n\n${body}\n`);
  const ast = JSON.parse(execFileSync(OPA, ['parse', '--format', 'json', file], { encoding: 'utf8' }));
  const r = inputReadsOf([ast]);
  return { paths: r.paths.map(formatInputPath), nondeterministic: r.nondeterministic };
}

test('a ref reads its constant prefix: strings and numbers, up to the first variable', () => {
  expect(reads('allow if input.request.method == "GET"').paths).toEqual(['input.request.method']);
  expect(reads('allow if input.mcp.arguments.card[0] == "x"').paths).toEqual(['input.mcp.arguments.card[0]']);
  expect(reads('allow if input.request.body[x].name == "y"').paths).toEqual(['input.request.body']);
  expect(reads('allow if input.request.headers["x-trace"] == "t"').paths).toEqual(['input.request.headers["x-trace"]']);
  expect(reads('allow if input.arr[_] == 1').paths).toEqual(['input.arr']);
});

test('a bare input reads everything: passed to a function, assigned, iterated, imported whole', () => {
  expect(reads('f(x) := true\nallow if f(input)').paths).toEqual(['input']);
  expect(reads('allow if { y := input; y.a }').paths).toEqual(['input']);
  expect(reads('allow if { some k in input; k }').paths).toEqual(['input']);
  expect(reads('import input\nallow if input.a').paths).toEqual(['input']);
  expect(reads('allow if object.get(input, "a", 1) == 1').paths).toEqual(['input']);
});

test('imports read their path whole; refs nested in refs, comprehensions, every, with and rule heads are found', () => {
  expect(reads('import input.request.headers as h\nallow if h.x').paths).toEqual(['input.request.headers']);
  expect(reads('allow if data.foo[input.key] == 1').paths).toEqual(['input.key']);
  expect(reads('allow if input.a[input.b.c].d').paths).toEqual(['input.a', 'input.b.c']);
  expect(reads('allow if { s := {k: 1 | some k, _ in input.obj}; s }').paths).toEqual(['input.obj']);
  expect(reads('allow if every v in input.list { v > 1 }').paths).toEqual(['input.list']);
  expect(reads('decision := input.x').paths).toEqual(['input.x']);
  expect(reads('allow if true with input.a as 1').paths).toEqual(['input.a']);
});

test('a path already covered by a shorter one is dropped; nothing read is nothing', () => {
  expect(reads('allow if { input.request.method; input.request; input.request.path }').paths).toEqual(['input.request']);
  expect(reads('allow := true').paths).toEqual([]);
  expect(reads('allow if data.x.input == 1').paths).toEqual([]);
});

test('non-deterministic builtins are found wherever they are called', () => {
  expect(reads('allow if time.now_ns() > 0').nondeterministic).toEqual(['time.now_ns']);
  expect(reads('allow if { rand.intn("x", 10) > 1; uuid.rfc4122("a") }').nondeterministic).toEqual(['rand.intn', 'uuid.rfc4122']);
  expect(reads('allow if time.parse_rfc3339_ns(input.time) > 0').nondeterministic).toEqual([]);
});

test('overlap: one path is a prefix of the other, either way, or they are equal', () => {
  expect(overlaps(['request', 'body'], ['request', 'body'])).toBe(true);
  expect(overlaps(['request'], ['request', 'body'])).toBe(true);
  expect(overlaps(['request', 'body', 'card'], ['request', 'body'])).toBe(true);
  expect(overlaps([], ['mcp', 'arguments'])).toBe(true);
  expect(overlaps(['request', 'method'], ['request', 'body'])).toBe(false);
  expect(overlaps(['mcp', 'arguments', 'message'], ['mcp', 'arguments', 'secret'])).toBe(false);
  expect(overlaps(['request', 'bodyx'], ['request', 'body'])).toBe(false);
});

test('omitted pointers are RFC 6901: ~1 is / and ~0 is ~; the first overlap is named', () => {
  expect(firstOverlap([['mcp', 'arguments', 'a/b']], ['/mcp/arguments/a~1b'])).toEqual({ read: ['mcp', 'arguments', 'a/b'], omitted: '/mcp/arguments/a~1b' });
  expect(firstOverlap([['mcp', 'arguments', 'a~b']], ['/mcp/arguments/a~0b'])).not.toBeNull();
  expect(firstOverlap([['mcp', 'arguments', 'a~1b']], ['/mcp/arguments/a~1b'])).toBeNull();
  expect(firstOverlap([['request', 'method']], ['/request/body', '/mcp/arguments'])).toBeNull();
  expect(firstOverlap([['request', 'body', 'note']], ['/request/body/card'])).toBeNull();
  expect(firstOverlap([['request', 'body']], ['/request/body/card'])).toEqual({ read: ['request', 'body'], omitted: '/request/body/card' });
  // A pointer that does not parse omits everything.
  expect(firstOverlap([['route']], ['no-slash'])).not.toBeNull();
});

test('the input projected on what is read keeps exactly those values, and the whole input when it is read whole', () => {
  const input = {
    route: 'up',
    agent: { id: 'bot', method: 'api_key' },
    request: { method: 'GET', path: '/x', headers: { a: '1' }, body: { items: [{ n: 1 }, { n: 2 }] } },
    mcp: { tool: 'echo', arguments: null },
    s: 'text',
  };
  expect(projectInput(input, [['agent', 'id'], ['request', 'method'], ['route']])).toEqual({ agent: { id: 'bot' }, request: { method: 'GET' }, route: 'up' });
  expect(
    projectInput(input, [
      ['request', 'body', 'items', '1'],
      ['mcp', 'arguments'],
    ]),
  ).toEqual({
    request: { body: { items: [undefined, { n: 2 }] } },
    mcp: { arguments: null },
  });
  // Absent paths stay absent; a path through a string stops at it.
  expect(
    projectInput(input, [
      ['nope', 'x'],
      ['request', 'nope'],
      ['s', 'x'],
    ]),
  ).toEqual({ request: {}, s: 'text' });
  expect(projectInput(input, [[], ['route']])).toBe(input);
  const proto = JSON.parse('{"__proto__": {"x": 1}}');
  const out = projectInput(proto, [['__proto__', 'x']]);
  expect(Object.hasOwn(out, '__proto__')).toBe(true);
  expect(JSON.stringify(out)).toBe('{"__proto__":{"x":1}}');
});

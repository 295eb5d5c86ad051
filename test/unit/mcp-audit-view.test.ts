import { createHash } from 'node:crypto';
import { canonicalJson } from '../../src/audit/canonical-json';
import { AUDIT_ARGUMENTS_CAP, applyMask, maskListOf, mcpAuditView, parsePointer } from '../../src/mcp/audit-view';
import { parseMcpCall } from '../../src/mcp/message';

const call = (args: Record<string, unknown>) =>
  parseMcpCall('POST', { 'content-type': 'application/json' }, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pay', arguments: args } }, true);
const sha = (v: unknown) => createHash('sha256').update(canonicalJson(v)).digest('hex');

describe('JSON pointers (RFC 6901)', () => {
  test('escapes ~1 and ~0 decode to / and ~', () => {
    expect(parsePointer('/arguments/a~1b/c~0d')).toEqual(['arguments', 'a/b', 'c~d']);
    expect(parsePointer('')).toEqual([]);
  });
  test('anything else is not a pointer', () => {
    expect(parsePointer('arguments/x')).toBeNull();
    expect(parsePointer('/a~2b')).toBeNull();
    expect(parsePointer('/a~')).toBeNull();
  });
});

describe('masking', () => {
  test('erases object members and array items in a copy, listing only pointers that matched', () => {
    const root = { arguments: { card: { number: '4111' }, list: ['a', 'b'], 'x/y': 1 } };
    const { value, masked } = applyMask(root, ['/arguments/card/number', '/arguments/list/1', '/arguments/x~1y', '/arguments/missing', '/arguments/list/9']);
    expect(value).toEqual({ arguments: { card: { number: '[masked]' }, list: ['a', '[masked]'], 'x/y': '[masked]' } });
    expect(masked).toEqual(['/arguments/card/number', '/arguments/list/1', '/arguments/x~1y']);
    expect(root.arguments.card.number).toBe('4111');
  });

  test('copies only what a matching pointer reaches: a mask that matches nothing records the arguments as they are', () => {
    const args = { message: 'hi', nested: { a: { b: 1 }, keep: { c: 2 } }, list: [{ k: 1 }, { k: 2 }] };
    const none = applyMask({ arguments: args }, ['/arguments/api_key', '/arguments/nested/zz/b', '/arguments/list/7/k']);
    expect(none.masked).toEqual([]);
    expect(none.value.arguments).toBe(args);
    const some = applyMask({ arguments: args }, ['/arguments/nested/a/b', '/arguments/list/1/k', '/arguments/nested/a']);
    expect(some.masked).toEqual(['/arguments/nested/a/b', '/arguments/list/1/k', '/arguments/nested/a']);
    expect(some.value.arguments).toEqual({ message: 'hi', nested: { a: '[masked]', keep: { c: 2 } }, list: [{ k: 1 }, { k: '[masked]' }] });
    // The caller's objects are untouched; what no pointer reached is shared, not copied.
    expect(args).toEqual({ message: 'hi', nested: { a: { b: 1 }, keep: { c: 2 } }, list: [{ k: 1 }, { k: 2 }] });
    const out = some.value.arguments as typeof args;
    expect(out.nested.keep).toBe(args.nested.keep);
    expect(out.list[0]).toBe(args.list[0]);
  });

  test('a pointer into a value an earlier pointer masked matches nothing', () => {
    const { value, masked } = applyMask({ arguments: { a: { b: 1 } } }, ['/arguments/a', '/arguments/a/b']);
    expect(value).toEqual({ arguments: { a: '[masked]' } });
    expect(masked).toEqual(['/arguments/a']);
  });

  test('does not follow inherited members', () => {
    const { masked } = applyMask({ arguments: {} }, ['/arguments/constructor/name', '/arguments/__proto__']);
    expect(masked).toEqual([]);
  });

  test('a mask that is not an array of pointers is refused', () => {
    expect(maskListOf(undefined)).toEqual([]);
    expect(maskListOf('/arguments/x')).toBeNull();
    expect(maskListOf([1])).toBeNull();
    expect(maskListOf(['arguments/x'])).toBeNull();
  });
});

describe('the mcp member of a decision record', () => {
  test('G12: keeps masked arguments, the pointers and the digest of the unmasked arguments', () => {
    const args = { amount: 5, card: '4111111111111111' };
    const v = mcpAuditView(call(args), 'sess', ['/arguments/card']);
    expect(v).toMatchObject({
      method: 'tools/call',
      tool: 'pay',
      session: 'sess',
      arguments: { amount: 5, card: '[masked]' },
      masked: ['/arguments/card'],
      arguments_sha256: sha(args),
    });
  });

  test('G12: a malformed mask keeps none of the arguments, only their digest', () => {
    const args = { card: '4111111111111111' };
    const v = mcpAuditView(call(args), null, '/arguments/card');
    expect(v.arguments).toBeUndefined();
    expect(v.masked).toEqual(['/arguments']);
    expect(v.arguments_sha256).toBe(sha(args));
    expect(JSON.stringify(v)).not.toContain('4111');
  });

  test('arguments longer than the cap are left out and flagged, the digest kept', () => {
    const args = { blob: 'x'.repeat(AUDIT_ARGUMENTS_CAP) };
    const v = mcpAuditView(call(args), null, undefined);
    expect(v.arguments).toBeUndefined();
    expect(v.truncated).toEqual(['arguments']);
    expect(v.arguments_sha256).toBe(sha(args));
  });
});

test('an own "__proto__" member is masked like any other', () => {
  const args = JSON.parse('{"__proto__": "secret-in-proto"}') as Record<string, unknown>;
  const v = mcpAuditView(call(args), null, ['/arguments/__proto__']);
  expect(v.masked).toEqual(['/arguments/__proto__']);
  expect(canonicalJson(v)).not.toContain('secret-in-proto');
});

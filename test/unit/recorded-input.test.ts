/** What a decision record keeps of the policy input (src/audit/recorded-input.ts). */
import { AUDIT_BODY_CAP, recordedInput } from '../../src/audit/recorded-input';
import { mcpAuditView } from '../../src/mcp/audit-view';
import type { McpCall } from '../../src/mcp/message';
import type { PolicyInput } from '../../src/policy/engine';

const base = (body?: unknown): PolicyInput => ({
  route: 'api',
  agent: { id: 'bot', method: 'api_key', spiffe_id: null, cert_sha256: null } as PolicyInput['agent'],
  request: { method: 'POST', path: '/items', query: { q: ['1'] }, headers: { 'content-type': 'application/json' }, ...(body !== undefined ? { body } : {}) },
  time: '2026-12-04T00:00:00.000Z',
});

test('a REST body is left out by default and listed as such; everything else is kept as the policy saw it', () => {
  const input = base({ kind: 'note', secret: 's3' });
  const r = recordedInput(input, { auditBody: false, mask: undefined });
  expect(r.input).toEqual({ ...input, request: { method: 'POST', path: '/items', query: { q: ['1'] }, headers: { 'content-type': 'application/json' } } });
  expect(r.omitted).toEqual(['/request/body']);
  expect(JSON.stringify(r)).not.toContain('s3');
  // The policy's own object is not changed.
  expect((input.request as { body?: unknown }).body).toEqual({ kind: 'note', secret: 's3' });
});

test('a call without a body omits nothing', () => {
  const r = recordedInput(base(), { auditBody: true, mask: undefined });
  expect(r.omitted).toBeUndefined();
  expect(r.input.request).toEqual(base().request);
});

test('with audit_body the body is kept, the mask applied (pointers rooted at the body) and each masked value listed', () => {
  const body = { kind: 'note', card: { number: '4111', exp: '12/30' } };
  const r = recordedInput(base(body), { auditBody: true, mask: ['/card/number', '/absent'] });
  expect((r.input.request as Record<string, unknown>).body).toEqual({ kind: 'note', card: { number: '[masked]', exp: '12/30' } });
  expect(r.omitted).toEqual(['/request/body/card/number']);
  expect(body.card.number).toBe('4111');
});

test('with audit_body, a broken mask or an oversized body keeps nothing of the body', () => {
  expect(recordedInput(base({ a: 1 }), { auditBody: true, mask: 'not a list' }).omitted).toEqual(['/request/body']);
  const big = { text: 'x'.repeat(AUDIT_BODY_CAP) };
  const r = recordedInput(base(big), { auditBody: true, mask: undefined });
  expect(r.omitted).toEqual(['/request/body']);
  expect((r.input.request as Record<string, unknown>).body).toBeUndefined();
});

test('MCP: the JSON-RPC body is never kept, arguments are not repeated, and what the audit view masked is listed', () => {
  const call = {
    kind: 'request',
    method: 'tools/call',
    id: 1,
    tool: 'pay',
    name: null,
    uri: null,
    arguments: { to: 'bob', card: '4111' },
    protocolVersion: '2025-06-18',
  } as unknown as McpCall;
  const view = mcpAuditView(call, 's1', ['/arguments/card']);
  const input: PolicyInput = {
    ...base({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pay', arguments: call.arguments } }),
    mcp: {
      kind: 'request',
      method: 'tools/call',
      id: 1,
      tool: 'pay',
      arguments: call.arguments,
      uri: null,
      name: null,
      protocol_version: '2025-06-18',
      session: 's1',
    },
  };
  const r = recordedInput(input, { auditBody: true, mask: ['/arguments/card'], mcpView: view });
  expect(r.input.mcp).toEqual({
    kind: 'request',
    method: 'tools/call',
    id: 1,
    tool: 'pay',
    uri: null,
    name: null,
    protocol_version: '2025-06-18',
    session: 's1',
  });
  expect(r.omitted).toEqual(['/request/body', '/mcp/arguments/card']);
  expect(JSON.stringify(r)).not.toContain('4111');
  // Arguments the view could not keep are listed whole.
  const cut = recordedInput(input, { auditBody: false, mask: 'broken', mcpView: mcpAuditView(call, 's1', 'broken') });
  expect(cut.omitted).toEqual(['/request/body', '/mcp/arguments']);
});

import type { CallContext } from '../../src/proxy/context';
import { parseMcpCall } from '../../src/mcp/message';
import { policyInput } from '../../src/proxy/policy-input';

/** The context policyInput reads: a decoded call on route `r`. */
function ctx(json: unknown, mcp: boolean): CallContext {
  const headers = { 'content-type': 'application/json', 'mcp-protocol-version': '2025-11-25' };
  return {
    req: { method: 'POST' },
    route: { name: 'r' },
    identity: null,
    relativePath: '/',
    target: { path: '/r/', query: [], search: '' },
    headers,
    json,
    time: '2026-12-04T00:00:00.000Z',
    mcp: mcp ? parseMcpCall('POST', headers, json, true) : null,
    mcpSession: null,
  } as unknown as CallContext;
}

describe('the policy input', () => {
  test('a tools/call gives its arguments once, as mcp.arguments; the rest of the message stays in request.body', () => {
    const args = { message: 'hi', nested: { a: 1 } };
    const message = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: args, _meta: { progressToken: 3 } } };
    const input = policyInput(ctx(message, true));
    expect(input.request.body).toEqual({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', _meta: { progressToken: 3 } } });
    expect((input.mcp as { arguments: unknown }).arguments).toBe(args);
    // The parsed message itself is not changed: the audit view and the forwarded bytes are the call's.
    expect(message.params.arguments).toBe(args);
    expect(JSON.stringify(input).split('"hi"').length - 1).toBe(1);
  });

  test('other MCP messages, and REST bodies, are request.body as parsed', () => {
    const list = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 'c' } };
    expect(policyInput(ctx(list, true)).request.body).toBe(list);
    const noArgs = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo' } };
    expect(policyInput(ctx(noArgs, true)).request.body).toBe(noArgs);
    const answer = { jsonrpc: '2.0', id: 3, result: { content: [] } };
    expect(policyInput(ctx(answer, true)).request.body).toBe(answer);
    const rest = { params: { arguments: { a: 1 } } };
    expect(policyInput(ctx(rest, false)).request.body).toBe(rest);
  });
});

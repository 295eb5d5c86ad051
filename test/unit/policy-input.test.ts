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
  test("G7: a tools/call's arguments are in request.body as parsed and in mcp.arguments: a rule reading either sees them", () => {
    // Both places, on purpose: a deny rule written against input.request.body.params.arguments
    // must not stop firing because the gateway moved them (issue 13 measured and declined that).
    const args = { message: 'hi', nested: { a: 1 } };
    const message = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: args, _meta: { progressToken: 3 } } };
    const input = policyInput(ctx(message, true));
    expect(input.request.body).toBe(message);
    expect((input.request.body as typeof message).params.arguments).toEqual(args);
    expect((input.mcp as { arguments: unknown }).arguments).toEqual(args);
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

/**
 * parseMcpCall, the one place an MCP message is read (G10): what it makes of each kind of
 * request, and every refusal with its code. The integration tests prove the same through the
 * gateway; these pin the rules one by one, fast.
 */
import { GatewayError } from '../../src/errors';
import { parseMcpCall, STATELESS_ERA } from '../../src/mcp/message';

const call = (json: unknown, headers: Record<string, string> = {}) => parseMcpCall('POST', headers, json, true);
const refused = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof GatewayError) return e.code;
    throw e;
  }
  throw new Error('not refused');
};

describe('what a message becomes', () => {
  test('a tools/call request: method, id, tool and arguments', () => {
    const m = call(
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'get-sum', arguments: { a: 1 } } },
      { 'mcp-session-id': 's-1', 'mcp-protocol-version': '2025-11-25' },
    );
    expect(m).toMatchObject({
      kind: 'request',
      method: 'tools/call',
      id: 7,
      tool: 'get-sum',
      arguments: { a: 1 },
      uri: null,
      name: null,
      protocolVersion: '2025-11-25',
      stateless: false,
      sessionId: 's-1',
    });
  });

  test('a tools/call without arguments has arguments null; string ids are kept', () => {
    expect(call({ jsonrpc: '2.0', id: 'abc', method: 'tools/call', params: { name: 'echo' } })).toMatchObject({ id: 'abc', tool: 'echo', arguments: null });
  });

  test('prompts/get names a prompt; resources/read a uri', () => {
    expect(call({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'simple' } })).toMatchObject({ name: 'simple', tool: null });
    expect(call({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'demo://r/1' } })).toMatchObject({ uri: 'demo://r/1' });
  });

  test('a notification has no id; a client response is kind response', () => {
    expect(call({ jsonrpc: '2.0', method: 'notifications/initialized' })).toMatchObject({ kind: 'notification', id: null });
    expect(call({ jsonrpc: '2.0', id: 3, result: {} })).toMatchObject({ kind: 'response', id: 3, method: null });
  });

  test('initialize names its protocol version in params; GET is a stream (with Last-Event-ID), DELETE a termination', () => {
    expect(call({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18' } }).protocolVersion).toBe('2025-06-18');
    expect(parseMcpCall('GET', { 'last-event-id': 'e-9', 'mcp-session-id': 's' }, undefined, false)).toMatchObject({
      kind: 'stream',
      lastEventId: 'e-9',
      sessionId: 's',
    });
    expect(parseMcpCall('DELETE', { 'mcp-session-id': 's' }, undefined, false)).toMatchObject({ kind: 'terminate', lastEventId: null });
  });

  test('the stateless era is recognised by its protocol version', () => {
    const m = call(
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } },
      { 'mcp-protocol-version': STATELESS_ERA, 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
    );
    expect(m.stateless).toBe(true);
  });
});

describe('refusals', () => {
  test.each([
    ['a batch', [{ jsonrpc: '2.0', id: 1, method: 'ping' }], 'PC_MCP_BATCH'],
    ['not an object', 'ping', 'PC_MCP_INVALID_MESSAGE'],
    ['jsonrpc not 2.0', { jsonrpc: '1.0', id: 1, method: 'ping' }, 'PC_MCP_INVALID_MESSAGE'],
    ['an unknown member', { jsonrpc: '2.0', id: 1, method: 'ping', extra: true }, 'PC_MCP_INVALID_MESSAGE'],
    ['a null id', { jsonrpc: '2.0', id: null, method: 'ping' }, 'PC_MCP_INVALID_MESSAGE'],
    ['a fractional id', { jsonrpc: '2.0', id: 1.5, method: 'ping' }, 'PC_MCP_INVALID_MESSAGE'],
    ['array params', { jsonrpc: '2.0', id: 1, method: 'ping', params: [] }, 'PC_MCP_INVALID_MESSAGE'],
    ['a bad method name', { jsonrpc: '2.0', id: 1, method: 'tools call' }, 'PC_MCP_INVALID_MESSAGE'],
    ['a tool name outside the alphabet', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'rm -rf' } }, 'PC_MCP_BAD_NAME'],
    ['a missing tool name', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} }, 'PC_MCP_INVALID_MESSAGE'],
    ['arguments that are not an object', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: [1] } }, 'PC_MCP_INVALID_MESSAGE'],
    ['a response with result and error', { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'x' } }, 'PC_MCP_INVALID_MESSAGE'],
    ['a response error without a code', { jsonrpc: '2.0', id: 1, error: { message: 'x' } }, 'PC_MCP_INVALID_MESSAGE'],
  ])('%s', (_what, json, code) => {
    expect(refused(() => call(json))).toBe(code);
  });

  test('a POST without a JSON body, a GET with one, and other HTTP methods', () => {
    expect(refused(() => parseMcpCall('POST', {}, undefined, false))).toBe('PC_MCP_INVALID_MESSAGE');
    expect(refused(() => parseMcpCall('GET', {}, undefined, true))).toBe('PC_MCP_INVALID_MESSAGE');
    expect(refused(() => parseMcpCall('PUT', {}, undefined, false))).toBe('PC_MCP_METHOD_NOT_ALLOWED');
  });

  test('mirrored headers that disagree with the body, in any era, or are missing in the stateless one', () => {
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } };
    expect(refused(() => call(body, { 'mcp-method': 'tools/list' }))).toBe('PC_MCP_HEADER_MISMATCH');
    expect(refused(() => call(body, { 'mcp-name': 'get-env' }))).toBe('PC_MCP_HEADER_MISMATCH');
    expect(refused(() => call(body, { 'mcp-protocol-version': STATELESS_ERA }))).toBe('PC_MCP_HEADER_MISMATCH');
    expect(refused(() => call(body, { 'mcp-protocol-version': STATELESS_ERA, 'mcp-method': 'tools/call' }))).toBe('PC_MCP_HEADER_MISMATCH');
    expect(refused(() => call(body, { 'mcp-protocol-version': 'yesterday' }))).toBe('PC_MCP_HEADER_MISMATCH');
  });

  test('a session id outside visible ASCII', () => {
    expect(refused(() => call({ jsonrpc: '2.0', id: 1, method: 'ping' }, { 'mcp-session-id': 'a b' }))).toBe('PC_MCP_INVALID_MESSAGE');
  });
});

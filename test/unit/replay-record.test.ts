/**
 * How replay reads a decision record (src/policy/replay/replay.ts): the recorded verdict, and the
 * policy input rebuilt from `input`, `mcp.arguments` and `input_omitted`.
 */
import { rebuildInput, recordedVerdict } from '../../src/policy/replay/replay';

test('the recorded verdict is deny only for the policy codes; other codes came after an allow', () => {
  expect(recordedVerdict({ decision: 'allow' })).toBe('allow');
  expect(recordedVerdict({ decision: 'deny', code: 'PC_POLICY_DENIED' })).toBe('deny');
  expect(recordedVerdict({ decision: 'deny', code: 'PC_POLICY_ERROR' })).toBe('deny');
  expect(recordedVerdict({ decision: 'deny', code: 'PC_AUDIT_UNAVAILABLE' })).toBe('allow');
  expect(recordedVerdict({ decision: 'deny', code: 'PC_CREDENTIAL_UNAVAILABLE' })).toBe('allow');
  // A dry-run record keeps the policy's verdict in its code.
  expect(recordedVerdict({ decision: 'deny', code: 'PC_POLICY_DENIED', enforced: false })).toBe('deny');
});

const mcpInput = () => ({ route: 'tools', request: { method: 'POST' }, mcp: { method: 'tools/call', tool: 'echo' } });

test("an MCP call's arguments come back from the record's mcp.arguments, masked values included", () => {
  const { input, omitted } = rebuildInput({
    input: mcpInput(),
    input_omitted: ['/request/body', '/mcp/arguments/secret'],
    mcp: { tool: 'echo', arguments: { message: 'hi', secret: '[masked]' } },
  });
  expect(input.mcp).toEqual({ method: 'tools/call', tool: 'echo', arguments: { message: 'hi', secret: '[masked]' } });
  expect(omitted).toEqual(['/request/body', '/mcp/arguments/secret']);
});

test('no mcp.arguments: null when the call had none, absent when they were left out', () => {
  expect(rebuildInput({ input: mcpInput(), input_omitted: ['/request/body'], mcp: { tool: 'echo' } }).input.mcp).toEqual({
    method: 'tools/call',
    tool: 'echo',
    arguments: null,
  });
  const cut = rebuildInput({ input: mcpInput(), input_omitted: ['/request/body', '/mcp/arguments'], mcp: { tool: 'echo', truncated: ['arguments'] } });
  expect(cut.input.mcp).toEqual({ method: 'tools/call', tool: 'echo' });
});

test('a REST record is its input as recorded; no input_omitted is an empty list', () => {
  const input = { route: 'up', request: { method: 'GET', path: '/x' } };
  expect(rebuildInput({ input })).toEqual({ input, omitted: [] });
});

test('an input_omitted entry that is not a string omits the whole input', () => {
  expect(rebuildInput({ input: { route: 'up' }, input_omitted: [7, '/request/body'] }).omitted).toEqual(['', '/request/body']);
});

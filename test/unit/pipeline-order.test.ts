/** The stage orders carry guarantees; reordering either half must fail here, on purpose. */
import { PIPELINE } from '../../src/proxy/pipeline';
import { RESPONSE_PIPELINE } from '../../src/proxy/response/response-pipeline';

const names = PIPELINE.map((s) => s.name);
const responseNames = RESPONSE_PIPELINE.map((s) => s.name);

test('G1 G3: decide, then audit the decision, then attach the credential, then forward', () => {
  expect(names).toEqual([
    'admit',
    'check-edge',
    'route',
    'identify',
    'read-body',
    'decode',
    'decide',
    'obtain-credential',
    'audit-decision',
    'inject-credential',
    'forward',
  ]);
  expect(names.indexOf('decide')).toBeLessThan(names.indexOf('audit-decision'));
  expect(names.indexOf('audit-decision')).toBeLessThan(names.indexOf('inject-credential'));
  expect(names.indexOf('inject-credential')).toBeLessThan(names.indexOf('forward'));
  expect(Object.isFrozen(PIPELINE)).toBe(true);
});

test('G20: Host and Origin are checked before the key, the route or the body is looked at', () => {
  expect(names.indexOf('check-edge')).toBe(1);
  expect(names.indexOf('check-edge')).toBeLessThan(names.indexOf('identify'));
  expect(names.indexOf('check-edge')).toBeLessThan(names.indexOf('read-body'));
});

test('G2 G13: the answer is checked and decoded before it is read, filtered before it is masked, and masked last', () => {
  expect(responseNames).toEqual(['response-headers', 'check-encoding', 'decode-body', 'mask-headers', 'mcp-sessions', 'filter-list', 'mask-body']);
  // Masking reads what the agent will read: after decoding, and after the list filter re-serialised the list.
  expect(responseNames.indexOf('check-encoding')).toBeLessThan(responseNames.indexOf('decode-body'));
  expect(responseNames.indexOf('decode-body')).toBeLessThan(responseNames.indexOf('filter-list'));
  expect(responseNames.indexOf('filter-list')).toBeLessThan(responseNames.indexOf('mask-body'));
  expect(responseNames.at(-1)).toBe('mask-body');
  expect(Object.isFrozen(RESPONSE_PIPELINE)).toBe(true);
});

/** How the entrypoint's value becomes a decision: anything unexpected denies, naming why. */
import { interpretResult } from '../../src/policy/engine';

test.each([
  [[{ result: true }], true, []],
  [[{ result: { allow: true, reasons: ['ok'] } }], true, ['ok']],
  [[{ result: { allow: false, reasons: ['no'] } }], false, ['no']],
  [[{ result: { allow: false } }], false, ['denied by policy']],
  [[{ result: false }], false, ['denied by policy']],
])('%j decides allow=%s', (results, allow, reasons) => {
  const d = interpretResult(results);
  expect(d.allow).toBe(allow);
  expect(d.reasons).toEqual(reasons);
  expect(d.error).toBeUndefined();
});

test.each([
  [[], /undefined/],
  [undefined, /undefined/],
  [[{ result: 'yes' }], /returned string/],
  [[{ result: 1 }], /returned number/],
  [[{ result: null }], /returned object|not a boolean/],
  [[{ result: [true] }], /returned object|not a boolean/],
  [[{ result: { allow: 'true' } }], /no boolean "allow"/],
  [[{ result: { reasons: [] } }], /no boolean "allow"/],
  [[{ result: { allow: true, reasons: 'x' } }], /array of strings/],
  [[{ result: true }, { result: true }], /more than one/],
])('%j is a deny with a cause', (results, cause) => {
  const d = interpretResult(results);
  expect(d.allow).toBe(false);
  expect(d.error).toMatch(cause);
  expect(d.reasons[0]).toMatch(/^policy error: /);
});

test('extra fields are kept for later stages', () => {
  expect(interpretResult([{ result: { allow: true, mask: ['/a'] } }]).extra).toEqual({ mask: ['/a'] });
});

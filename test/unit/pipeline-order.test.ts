/** The stage order carries two guarantees; reordering PIPELINE must fail here, on purpose. */
import { PIPELINE } from '../../src/proxy/pipeline';

const names = PIPELINE.map((s) => s.name);

test('G1 G3: decide, then audit the decision, then attach the credential, then forward', () => {
  expect(names).toEqual(['identify', 'route', 'read-body', 'decode', 'decide', 'audit-decision', 'inject-credential', 'forward']);
  expect(names.indexOf('decide')).toBeLessThan(names.indexOf('audit-decision'));
  expect(names.indexOf('audit-decision')).toBeLessThan(names.indexOf('inject-credential'));
  expect(names.indexOf('inject-credential')).toBeLessThan(names.indexOf('forward'));
  expect(Object.isFrozen(PIPELINE)).toBe(true);
});

/** Pure parts of the aws_sigv4 provider: the fast needle set of a signature equals the general one. */
import { randomBytes } from 'node:crypto';
import { compileNeedles, hexStringNeedles } from '../../src/credential-injector/needles';

const asSet = (needles: Buffer[]) => needles.map((n) => n.toString('latin1')).sort();

test('G25: a signature is masked in the same encoded forms as any secret (hexStringNeedles = compileNeedles)', () => {
  for (let i = 0; i < 200; i++) {
    const sig = randomBytes(32).toString('hex');
    expect(asSet(hexStringNeedles(sig))).toEqual(asSet(compileNeedles([sig])));
  }
  // Anything that is not lower-case hex takes the general path.
  expect(asSet(hexStringNeedles('ABC/def+1'))).toEqual(asSet(compileNeedles(['ABC/def+1'])));
});

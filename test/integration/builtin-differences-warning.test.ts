/**
 * `policy build` and every gateway load (both go through compilePolicy) warn about each call to a
 * builtin that still behaves differently from OPA's Go evaluator, naming the builtin and the file;
 * the starter library calls none of them. Real OPA builds the bundles.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compilePolicy } from '../../src/policy/bundle';
import { OPA } from '../helpers/harness';

/**
 * The PortcullisBuiltinWarning messages emitted while `fn` runs. Observed on process.emitWarning
 * itself (still called through): jest's sandboxed \`process\` does not relay 'warning' events.
 */
async function warningsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const spy = jest.spyOn(process, 'emitWarning');
  try {
    await fn();
    return spy.mock.calls
      .filter(([, options]) => (options as { code?: string } | undefined)?.code === 'PC_BUILTIN_DIFFERS')
      .map(([message]) => String(message));
  } finally {
    spy.mockRestore();
  }
}

describe('warnings about builtins that differ from OPA', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-differences-'));
    await writeFile(
      path.join(dir, 'policy.rego'),
      [
        'package portcullis',
        '',
        '# json.marshal(x) here is only a comment',
        'decision := {"allow": false, "reasons": [sprintf("denied: %v", [input.request.body])]}',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the builtin and the rego file when a compiled policy calls one', async () => {
    const warnings = await warningsDuring(() => compilePolicy({ path: dir, entrypoint: 'portcullis/decision', opa: OPA }));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^policy\.rego:4: sprintf behaves differently in the gateway than in opa test: a set operand prints as an array/);
  });

  it('says nothing for the starter library', async () => {
    const starter = path.join(__dirname, '..', '..', 'policies');
    expect(await warningsDuring(() => compilePolicy({ path: starter, entrypoint: 'portcullis/decision', opa: OPA }))).toEqual([]);
  });
});

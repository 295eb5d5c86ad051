/**
 * The `policy.require_tests` gate: a policy goes into force only if its own tests pass. Runs the
 * real `opa test` on the policy directory (the Go evaluator, with the directory's data.json),
 * at start-up and before every reload; a failure is a PolicyBuildError, so start-up refuses and
 * a reload is rejected (`policy_rejected`) with the old policy kept in force.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PolicyBuildError } from '../errors';

const run = promisify(execFile);

/** One result of `opa test --format json`. */
interface OpaTestResult {
  readonly package: string;
  readonly name: string;
  readonly fail?: boolean;
  readonly error?: { readonly message?: string };
}

/**
 * Runs `opa test` on `dir`; resolves if there is at least one test and all pass, otherwise
 * throws a PolicyBuildError naming the failing tests (or saying there are none). A prebuilt
 * bundle (`isDirectory` false) carries no tests, so it is refused.
 */
export async function requirePassingTests(opa: string, dir: string, isDirectory: boolean): Promise<void> {
  if (!isDirectory) {
    throw new PolicyBuildError(`policy.require_tests: ${dir} is a bundle, which carries no tests; point policy.path at the policy directory`);
  }
  let stdout: string;
  try {
    ({ stdout } = await run(opa, ['test', '--format', 'json', dir], { maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (e.code !== 2 || !e.stdout) {
      // 2: tests ran and some failed; anything else did not run
      throw new PolicyBuildError(`policy.require_tests: opa test did not run on ${dir}: ${(e.stderr || e.stdout || e.message).trim()}`);
    }
    stdout = e.stdout;
  }
  let results: OpaTestResult[];
  try {
    results = stdout.trim() === '' ? [] : (JSON.parse(stdout) as OpaTestResult[]);
  } catch {
    throw new PolicyBuildError(`policy.require_tests: opa test printed no JSON for ${dir}`);
  }
  if (results.length === 0) {
    throw new PolicyBuildError(`policy.require_tests: ${dir} has no tests (*_test.rego with test_ rules)`);
  }
  const failed = results.filter((r) => r.fail || r.error);
  if (failed.length > 0) {
    const names = failed.map((r) => `${r.package.replace(/^data\./, '')}.${r.name}${r.error?.message ? ` (${r.error.message})` : ''}`);
    throw new PolicyBuildError(`policy.require_tests: ${failed.length} of ${results.length} tests of ${dir} fail: ${names.join(', ')}`);
  }
}

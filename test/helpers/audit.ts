/** Audit test helpers: a signing key per test run, and writer options using it. */
import { generateSignerKey, parseSignerKey, type NoteSigner } from '../../src/audit/signed-note';
import type { AuditWriterOptions } from '../../src/audit/writer';

/** The signer key text every test writer uses, and its public key. */
export const TEST_SIGNER_KEY = generateSignerKey('portcullis-test/audit');
export const TEST_SIGNER: NoteSigner = parseSignerKey(TEST_SIGNER_KEY);
export const TEST_PUBLIC_KEY = TEST_SIGNER.verifierKey;

/** Strict writer options for `dir` signed by TEST_SIGNER; `extra` overrides. */
export function writerOptions(dir: string, extra: Partial<AuditWriterOptions> = {}): AuditWriterOptions {
  return { dir, durability: 'strict', signer: TEST_SIGNER, ...extra };
}

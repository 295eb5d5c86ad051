/** Audit test helpers: a signing key per test run, writer options using it, reading a live segment. */
import { readFileSync } from 'node:fs';
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

/**
 * A segment's text without the zero tail a strict writer keeps ahead of its records in the
 * newest segment (its preallocation; docs/audit.md): what a reader sees as its content.
 */
export function segmentText(file: string): string {
  return readFileSync(file, 'utf8').replace(/\0+$/, '');
}

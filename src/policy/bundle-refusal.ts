/**
 * Why a policy bundle was refused before it could be put in force: one error type for every
 * check of the pipeline (docs/policy-lifecycle.md) that judges a bundle's bytes, so the store
 * catches one class and writes its stable `reason` into `policy_rejected`. The codes are listed
 * in docs/policy.md ("Signed bundles"), which a test keeps in step with this table; they are
 * never reused or renamed.
 */

/** The refusal codes and what each means (the meaning is also documentation). */
export const BUNDLE_REFUSAL_REASONS = {
  unsigned: 'The bundle has no `.signatures.json`, or it holds no signature.',
  bad_signature: 'The JWS in `.signatures.json` does not verify with the selected key (another key, another algorithm, altered bytes).',
  unknown_key: 'The key the signature names (the configured key id, else the JWS `kid`, else the payload `keyid`) is not configured, or none is named.',
  wrong_scope: "The signed payload's `scope` is not the configured one (both absent counts as equal).",
  digest_mismatch: "A file's digest is not the one the signature lists for it.",
  unlisted_file: 'The bundle holds a file the signature does not list (and that is not excluded).',
  missing_file: 'The signature lists a file the bundle does not hold.',
  malformed:
    '`.signatures.json`, the JWS or its payload, or a signed JSON file cannot be read as OPA reads it (or uses what is refused here: several signatures, a signing plugin, MD5 or SHA-1, YAML data).',
  bad_manifest: 'The `.manifest` is not a JSON object of the form OPA reads (revision, roots, rego_version, wasm, metadata).',
  bad_serial:
    '`metadata.serial` in the `.manifest` is present but is not a non-negative integer up to 2^53 − 1 written as one (no fraction, exponent or sign).',
  no_serial: 'Signing is configured, so a serial is required, and the `.manifest` has none.',
  rollback: 'The serial is below the highest one accepted before, or equal to it with other bytes.',
} as const;

/** A refusal code. */
export type BundleRefusalReason = keyof typeof BUNDLE_REFUSAL_REASONS;

/** A bundle refused by a check; `file` is the bundle member it concerns, when there is one. */
export class BundleRefusedError extends Error {
  readonly reason: BundleRefusalReason;
  /** The member concerned, as the signature names it (no leading `/`), or null. */
  readonly file: string | null;

  constructor(reason: BundleRefusalReason, message: string, file: string | null = null) {
    super(message);
    this.name = 'BundleRefusedError';
    this.reason = reason;
    this.file = file;
  }
}

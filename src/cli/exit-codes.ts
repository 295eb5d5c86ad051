/** Exit codes of the `portcullis` CLI (documented in docs/cli.md; a test keeps them in step). */
export const EXIT = {
  /** Success; for `policy eval`, the call is allowed; for `policy test`, all tests passed. */
  OK: 0,
  /** `policy eval`: denied. `policy test`: a test failed. `policy replay`: something `--fail-on` names happened. `audit verify`: a problem found. */
  DENIED_OR_FAILED: 1,
  /** Usage error: unknown command or option, missing argument. */
  USAGE: 2,
  /** `audit verify`: no problem found, but not everything could be checked (shares 2 with usage). */
  UNVERIFIABLE: 2,
  /** The configuration is invalid (the message names the file, key path and problem). */
  CONFIG: 3,
  /** The policy does not compile or load. */
  POLICY: 4,
  /** A runtime failure: cannot listen, cannot open the audit log, OPA missing. */
  RUNTIME: 5,
} as const;

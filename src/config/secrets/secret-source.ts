/**
 * Where secret values come from. A secret reference in the config names one source by its key
 * (`{env: NAME}`, `{file: PATH}`); each source is one small module, and the registry
 * (registry.ts) lists them, so a vault is a new file and a line there, not an edit to the loader.
 */
import type { ConfigLocation } from '../../errors';
import type { Secret } from '../../secret';

/** What a source may need from the config being loaded. */
export interface SecretContext {
  /** The environment secrets are read from (process.env unless a test passes its own). */
  readonly env: NodeJS.ProcessEnv;
  /** The config file's directory: relative secret files are resolved against it. */
  readonly baseDir: string;
}

/** One kind of secret source. */
export interface SecretSource {
  /** The key that selects it in a secret reference, e.g. `env`. */
  readonly kind: string;
  /**
   * Reads one secret. `spec` is the reference's value (a variable name, a path); `where` is the
   * location of its key in the config, which every ConfigError it throws names. The message
   * may name the variable or the file, never the value.
   */
  load(spec: string, where: ConfigLocation): Secret;
}

/** Builds a source for one load of the config. */
export type SecretSourceFactory = (context: SecretContext) => SecretSource;

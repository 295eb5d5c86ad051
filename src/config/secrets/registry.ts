/**
 * The secret sources the config may name, and the one place a secret reference is turned into
 * a Secret: exactly one source per reference, errors located at the source's key.
 */
import { ConfigError } from '../../errors';
import { unresolvedSecret, type Secret } from '../../secret';
import type { ConfigSource, KeyPath } from '../source';
import { envSource } from './env-source';
import { fileSource } from './file-source';
import type { SecretContext, SecretSourceFactory } from './secret-source';

/** Every source, by the key that selects it. A new source is a file and a line here (and in the schema). */
const SECRET_SOURCES: readonly SecretSourceFactory[] = [envSource, fileSource];

/** Whether secrets are read, or left as unresolved placeholders (commands that need only the policy and routes). */
export type SecretMode = 'load' | 'skip';

/** Reads the secret references of one config. */
export interface SecretReader {
  /**
   * The secret `ref` (the mapping at `path`) names. `prefix` is for references whose keys are
   * spelt with one (`password_env`, `password_file`).
   */
  read(ref: { readonly [key: string]: unknown }, path: KeyPath, prefix?: string): Secret;
}

/** A reader for the config in `source`. */
export function secretReader(source: ConfigSource, context: SecretContext, mode: SecretMode): SecretReader {
  const sources = SECRET_SOURCES.map((make) => make(context));
  return {
    read(ref, path, prefix = '') {
      const named = sources.filter((s) => ref[`${prefix}${s.kind}`] !== undefined);
      const keys = sources.map((s) => `${prefix}${s.kind}`).join(' or ');
      if (named.length === 0) throw new ConfigError('CONFIG_MISSING_KEY', source.locate(path), `set the secret's source: ${keys}`);
      if (named.length > 1) {
        throw new ConfigError(
          'CONFIG_CONFLICT',
          source.locate([...path, `${prefix}${named[1].kind}`], { key: true }),
          `set exactly one source for the secret: ${keys}`,
        );
      }
      const [chosen] = named;
      const key = `${prefix}${chosen.kind}`;
      const spec = String(ref[key]);
      if (mode === 'skip') return unresolvedSecret(`${chosen.kind} ${spec}`);
      return chosen.load(spec, source.locate([...path, key], { key: true }));
    },
  };
}

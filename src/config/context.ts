/** What every resolver of the validated config shares: the source (for locations), the secret reader, the base directory. */
import { ConfigError, type ConfigCode } from '../errors';
import type { SecretMode, SecretReader } from './secrets/registry';
import type { ConfigSource, KeyPath } from './source';

/** One load's resolving context. */
export class ResolveContext {
  constructor(
    readonly source: ConfigSource,
    readonly secrets: SecretReader,
    /** The config file's directory; relative paths are resolved against it. */
    readonly baseDir: string,
    /** 'skip': secrets stay placeholders, and files that hold secrets are not read. */
    readonly secretMode: SecretMode,
  ) {}

  /** Throws a ConfigError located at `path` (its key with `key: true`). */
  fail(code: ConfigCode, path: KeyPath, problem: string, options: { key?: boolean } = {}): never {
    throw new ConfigError(code, this.source.locate(path, options), problem);
  }

  /** `host:port` (validated in form by the schema) with the port in range. */
  hostPort(value: string, path: KeyPath, minPort = 0): { host: string; port: number } {
    const i = value.lastIndexOf(':');
    const host = value.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(value.slice(i + 1));
    if (port < minPort || port > 65535) this.fail('CONFIG_RANGE', path, `port ${value.slice(i + 1)} is out of range: expected ${minPort}–65535`);
    return { host, port };
  }
}

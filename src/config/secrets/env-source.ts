/** `{env: NAME}`: a secret read from an environment variable, which must be set and non-empty. */
import { ConfigError } from '../../errors';
import { Secret } from '../../secret';
import type { SecretSourceFactory } from './secret-source';

/** The environment-variable source. */
export const envSource: SecretSourceFactory = ({ env }) => ({
  kind: 'env',
  load(name, where) {
    const value = env[name];
    if (value === undefined || value === '') throw new ConfigError('CONFIG_MISSING_ENV', where, `environment variable ${name} is not set or empty`);
    return new Secret(value, `env ${name}`);
  },
});

/**
 * `{file: PATH}`: a secret read from a file (a mounted Kubernetes or Docker secret), relative to
 * the config file. One line; a final newline is dropped, and anything more is refused rather
 * than guessed at.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../errors';
import { Secret } from '../../secret';
import type { SecretSourceFactory } from './secret-source';

/** The file source. */
export const fileSource: SecretSourceFactory = ({ baseDir }) => ({
  kind: 'file',
  load(file, where) {
    const secretPath = path.resolve(baseDir, file);
    let value: string;
    try {
      value = readFileSync(secretPath, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError('CONFIG_SECRET_FILE', where, `cannot read secret file ${secretPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (value === '') throw new ConfigError('CONFIG_SECRET_FILE', where, `secret file ${secretPath} is empty`);
    if (/[\r\n]/.test(value)) throw new ConfigError('CONFIG_SECRET_FILE', where, `secret file ${secretPath} holds more than one line`);
    return new Secret(value, `file ${secretPath}`);
  },
});

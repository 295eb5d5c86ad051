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

/**
 * The secret value a secret file's content holds: one line, a final newline dropped. Returns
 * the reason instead when it holds none (at load a ConfigError; when a watched file changes, the
 * value in use is kept, src/credential-injector/static.ts).
 */
export function secretFileValue(content: string): { value: string } | { problem: string } {
  const value = content.replace(/\r?\n$/, '');
  if (value === '') return { problem: 'is empty' };
  if (/[\r\n]/.test(value)) return { problem: 'holds more than one line' };
  return { value };
}

/** The file source. */
export const fileSource: SecretSourceFactory = ({ baseDir }) => ({
  kind: 'file',
  load(file, where) {
    const secretPath = path.resolve(baseDir, file);
    let content: string;
    try {
      content = readFileSync(secretPath, 'utf8');
    } catch (err) {
      throw new ConfigError('CONFIG_SECRET_FILE', where, `cannot read secret file ${secretPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const read = secretFileValue(content);
    if ('problem' in read) throw new ConfigError('CONFIG_SECRET_FILE', where, `secret file ${secretPath} ${read.problem}`);
    return new Secret(read.value, `file ${secretPath}`);
  },
});

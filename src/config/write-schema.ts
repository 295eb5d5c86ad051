/** Writes schema/portcullis.schema.json from CONFIG_SCHEMA (`npm run schema`). */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_SCHEMA } from './schema';

/** The published schema file's text. */
export function schemaText(): string {
  return `${JSON.stringify(CONFIG_SCHEMA, null, 2)}\n`;
}

/** Path of the published schema, relative to the repository root. */
export const SCHEMA_FILE = 'schema/portcullis.schema.json';

if (require.main === module) {
  const out = path.resolve(__dirname, '../../..', SCHEMA_FILE);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, schemaText());
  process.stdout.write(`wrote ${out}\n`);
}

/** The docs and the code list the same error codes, exit codes and guarantees. */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../src/cli/exit-codes';
import { CONFIG_CODES, ERROR_CODES, OUTCOME_CODES } from '../../src/errors';

const root = path.resolve(__dirname, '../..');
const doc = (name: string) => readFileSync(path.join(root, 'docs', name), 'utf8');

function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => /^\| `?[A-Z0-9_]/.test(l) || /^\| \d+ \|/.test(l) || /^\| G\d+ \|/.test(l))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim().replace(/`/g, '')),
    );
}

test('docs/errors.md lists exactly the codes in src/errors.ts, with their statuses', () => {
  const all = tableRows(doc('errors.md'));
  expect(all.filter((r) => !/^(PC|CONFIG)_/.test(r[0]))).toEqual([]);
  const rows = all.filter((r) => r[0].startsWith('PC_'));
  expect(rows.map((r) => r[0]).sort()).toEqual(Object.keys(ERROR_CODES).sort());
  for (const [code, status] of rows) expect(String(ERROR_CODES[code as keyof typeof ERROR_CODES].status)).toBe(status);
});

test('docs/errors.md lists exactly the configuration codes in src/errors.ts', () => {
  const rows = tableRows(doc('errors.md')).filter((r) => r[0].startsWith('CONFIG_'));
  expect(rows.map((r) => r[0]).sort()).toEqual(Object.keys(CONFIG_CODES).sort());
});

test('docs/errors.md lists exactly the outcome codes in src/errors.ts', () => {
  const documented = doc('errors.md')
    .split('\n')
    .filter((l) => /^\| `[a-z]/.test(l))
    .flatMap((l) =>
      l
        .split('|')[1]
        .split(',')
        .map((c) => c.trim().replace(/`/g, '')),
    );
  expect(documented.sort()).toEqual([...OUTCOME_CODES].sort());
});

test('docs/cli.md lists exactly the exit codes in src/cli/exit-codes.ts', () => {
  const rows = tableRows(doc('cli.md')).filter((r) => /^\d+$/.test(r[0]));
  expect(rows.map((r) => [Number(r[0]), r[1]])).toEqual(Object.entries(EXIT).map(([k, v]) => [v, k]));
});

test('every guarantee in docs/guarantees.md is cited by a test', () => {
  const ids = tableRows(doc('guarantees.md')).map((r) => r[0]);
  expect(ids.length).toBeGreaterThanOrEqual(7);
  const tests: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.test.ts') && e.name !== 'docs-sync.test.ts') tests.push(readFileSync(path.join(d, e.name), 'utf8'));
    }
  };
  walk(path.join(root, 'test'));
  const all = tests.join('\n');
  for (const id of ids) expect({ id, cited: new RegExp(`['"\`][^'"\`]*\\b${id}\\b[^'"\`]*['"\`]`).test(all) }).toEqual({ id, cited: true });
});

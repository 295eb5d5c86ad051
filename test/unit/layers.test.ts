/**
 * The layer rule of docs/architecture.md: each module imports only its own layer and the layers
 * below it (type-only imports too), and a folder with an "imported only by" list only from
 * there. The table is read from the doc itself, so the doc and this check cannot disagree.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const src = path.join(root, 'src');

/** A row of the table: a folder or file, its layer, and who alone may import it (empty: anyone allowed by layer). */
interface Row {
  readonly prefix: string;
  readonly layer: number;
  readonly onlyBy: readonly string[];
}

const paths = (cell: string) => (cell.match(/`src\/[^`]+`/g) ?? []).map((p) => p.slice(1, -1).replace(/\/$/, ''));

/** The table under "## Layers": layer | folders | imported only by | owns (longest prefix first). */
function layerTable(): Row[] {
  const text = readFileSync(path.join(root, 'docs/architecture.md'), 'utf8');
  const section = text.slice(text.indexOf('## Layers'), text.indexOf('\n## ', text.indexOf('## Layers') + 1));
  const out: Row[] = [];
  for (const line of section.split('\n')) {
    const m = /^\| (\d+) \| ([^|]+)\|([^|]*)\|/.exec(line);
    if (!m) continue;
    for (const prefix of paths(m[2])) out.push({ prefix, layer: Number(m[1]), onlyBy: paths(m[3]) });
  }
  return out.sort((a, b) => b.prefix.length - a.prefix.length);
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

const table = layerTable();
const inside = (rel: string, prefix: string) => rel === prefix.replace(/\.ts$/, '') || rel.startsWith(`${prefix}/`);
const rowOf = (file: string) => {
  const rel = path.relative(root, file).replace(/\.ts$/, '');
  return table.find((r) => inside(rel, r.prefix));
};
const layerOf = (file: string) => rowOf(file)?.layer;

test('the table names a layer for every module in src/', () => {
  expect(table.length).toBeGreaterThan(5);
  expect(
    sources(src)
      .filter((f) => layerOf(f) === undefined)
      .map((f) => path.relative(root, f)),
  ).toEqual([]);
});

test('no module imports from a layer above its own', () => {
  const violations: string[] = [];
  for (const file of sources(src)) {
    const own = layerOf(file)!;
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from '(\.[^']+)'/gm)) {
      const target = path.resolve(path.dirname(file), m[1]);
      const row = rowOf(`${target}.ts`) ?? rowOf(target);
      if (!row) continue;
      const from = path.relative(root, file).replace(/\.ts$/, '');
      if (row.layer > own) violations.push(`${from}.ts (layer ${own}) imports ${m[1]} (layer ${row.layer})`);
      if (row.onlyBy.length && !inside(from, row.prefix) && !row.onlyBy.some((p) => inside(from, p))) {
        violations.push(`${from}.ts imports ${m[1]}, which only ${row.onlyBy.join(', ')} may import`);
      }
    }
  }
  expect(violations).toEqual([]);
});

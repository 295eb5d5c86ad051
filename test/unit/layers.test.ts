/**
 * The layer rule of docs/architecture.md: each module imports only its own layer and the layers
 * below it. The table is read from the doc itself, so the doc and this check cannot disagree.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const src = path.join(root, 'src');

/** `src/…` path prefix → layer, from the table under "## Layers" (longest prefix wins). */
function layerTable(): [string, number][] {
  const text = readFileSync(path.join(root, 'docs/architecture.md'), 'utf8');
  const section = text.slice(text.indexOf('## Layers'), text.indexOf('\n## ', text.indexOf('## Layers') + 1));
  const out: [string, number][] = [];
  for (const line of section.split('\n')) {
    const m = /^\| (\d+) \| (.+?) \|/.exec(line);
    if (!m) continue;
    for (const p of m[2].match(/`src\/[^`]+`/g) ?? []) out.push([p.slice(1, -1).replace(/\/$/, ''), Number(m[1])]);
  }
  return out.sort((a, b) => b[0].length - a[0].length);
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

const table = layerTable();
const layerOf = (file: string) => {
  const rel = path.relative(root, file).replace(/\.ts$/, '');
  return table.find(([p]) => rel === p.replace(/\.ts$/, '') || rel.startsWith(`${p}/`))?.[1];
};

test('the table names a layer for every module in src/', () => {
  expect(table.length).toBeGreaterThan(5);
  expect(sources(src).filter((f) => layerOf(f) === undefined).map((f) => path.relative(root, f))).toEqual([]);
});

test('no module imports from a layer above its own', () => {
  const violations: string[] = [];
  for (const file of sources(src)) {
    const own = layerOf(file)!;
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from '(\.[^']+)'/gm)) {
      const target = path.resolve(path.dirname(file), m[1]);
      const layer = layerOf(`${target}.ts`) ?? layerOf(target);
      if (layer !== undefined && layer > own) violations.push(`${path.relative(root, file)} (layer ${own}) imports ${m[1]} (layer ${layer})`);
    }
  }
  expect(violations).toEqual([]);
});

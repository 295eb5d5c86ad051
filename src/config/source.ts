/**
 * The YAML text of a config file, parsed once, and the map from key paths back to lines. Every
 * ConfigError is located through here, so an error names the line (and column) of the key or
 * value at fault, whichever stage found it: the YAML parser, the schema, or the resolver.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import { ConfigError, type ConfigLocation } from '../errors';

/** A key path as segments: map keys and sequence indexes, e.g. ['routes', 1, 'prefix']. */
export type KeyPath = readonly (string | number)[];

/** `['routes', 1, 'prefix']` → `routes[1].prefix`. */
function keyPathText(segments: KeyPath): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

/** A parsed config file that can say where each key path is. */
export class ConfigSource {
  readonly file: string;
  /** The document as plain data (before defaults are applied). */
  readonly data: unknown;
  private readonly doc: Document;
  private readonly lines: LineCounter;

  /** Parses `text`; throws ConfigError for YAML syntax errors, duplicate keys and aliases. */
  constructor(text: string, file: string) {
    this.file = file;
    this.lines = new LineCounter();
    this.doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: true, prettyErrors: false });
    const e = this.doc.errors[0];
    if (e) {
      const keyPath = this.pathAt(e.pos[0]);
      if (e.code === 'DUPLICATE_KEY')
        throw new ConfigError('CONFIG_DUPLICATE_KEY', this.at(e.pos[0], keyPath), `duplicate key "${keyPath[keyPath.length - 1]}"`);
      // The parser may notice a mistake far from it (an unclosed quote, at the end of the file):
      // point at the start of the value it is in, and say where the parser stopped.
      const where = this.locate(keyPath);
      const noticed = this.at(e.pos[0], keyPath);
      const stopped = noticed.line !== where.line ? ` (the parser noticed at line ${noticed.line}, column ${noticed.column})` : '';
      throw new ConfigError('CONFIG_YAML_SYNTAX', where, `invalid YAML: ${e.message.split('\n')[0]}${stopped}`);
    }
    let alias: number | null = null;
    visit(this.doc, {
      Alias(_key, node) {
        alias = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    if (alias !== null) {
      throw new ConfigError('CONFIG_YAML_ALIAS', this.at(alias, this.pathAt(alias)), 'YAML aliases (*name) are not allowed: write the value out');
    }
    this.data = this.doc.toJS();
  }

  /** Whether the file itself sets this key (defaults are not in the file). */
  has(path: KeyPath): boolean {
    return this.doc.hasIn(path);
  }

  /**
   * The location of the value at `path`, or with `key: true` of its key (for unknown keys, and
   * for a secret's `env:` / `file:`). A path the file does not have (a key to add) points at the
   * nearest enclosing node that exists.
   */
  locate(path: KeyPath, options: { key?: boolean } = {}): ConfigLocation {
    for (let n = path.length; n >= 0; n--) {
      const head = path.slice(0, n);
      const offset = n === path.length && options.key ? this.keyOffset(head) : this.valueOffset(head);
      if (offset !== null) return this.at(offset, path);
    }
    return { file: this.file, keyPath: keyPathText(path) };
  }

  private at(offset: number, path: KeyPath): ConfigLocation {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, keyPath: keyPathText(path), line, column: col };
  }

  private valueOffset(path: KeyPath): number | null {
    const node = (path.length ? this.doc.getIn(path, true) : this.doc.contents) as Node | null | undefined;
    return node && typeof node === 'object' && node.range ? node.range[0] : null;
  }

  private keyOffset(path: KeyPath): number | null {
    if (path.length === 0) return this.valueOffset(path);
    const parent = this.doc.getIn(path.slice(0, -1), true) ?? (path.length === 1 ? this.doc.contents : null);
    const last = path[path.length - 1];
    if (!isMap(parent)) return this.valueOffset(path);
    const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(last));
    const range = (pair?.key as Node | undefined)?.range;
    return range ? range[0] : null;
  }

  /** The key path of the deepest node at `offset` (for YAML errors, which give only offsets). */
  private pathAt(offset: number): (string | number)[] {
    const out: (string | number)[] = [];
    let node: unknown = this.doc.contents;
    const inside = (n: unknown) => {
      const r = (n as Node | null)?.range;
      return !!r && offset >= r[0] && offset <= r[2];
    };
    for (;;) {
      if (isMap(node)) {
        // Later pairs first: a duplicate key is the second of two pairs with the same key.
        const pair = [...node.items].reverse().find((p) => isPair(p) && (inside(p.key) || inside(p.value)));
        if (!pair || !isScalar(pair.key)) return out;
        out.push(String(pair.key.value));
        if (inside(pair.key)) return out;
        node = pair.value;
      } else if (isSeq(node)) {
        const i = node.items.findIndex((item) => inside(item));
        if (i === -1) return out;
        out.push(i);
        node = node.items[i];
      } else {
        return out;
      }
    }
  }
}

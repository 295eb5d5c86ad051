/**
 * docs/cli.md and the CLI's own --help agree: the same commands, and for each command the same
 * flags (as docs-sync.test.ts does for error and exit codes). Runs the built CLI.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const CLI = path.join(root, 'dist/src/cli/main.js');
const help = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args, '--help'], { encoding: 'utf8' });

/** Every flag in a text: --long or -s, not part of a word (so not OPA_TEST_ARGS, not 'x-y'). */
function flags(text: string): string[] {
  return [...new Set(text.match(/(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])(?![\w-])/g) ?? [])].sort();
}

/** docs/cli.md's "### portcullis COMMAND" sections under "## Options": command → the flags in its table's first column. */
function documented(): Map<string, string[]> {
  const doc = readFileSync(path.join(root, 'docs/cli.md'), 'utf8');
  const options = doc.slice(doc.indexOf('\n## Options\n'), doc.indexOf('\n## Exit codes\n'));
  const sections = new Map<string, string[]>();
  for (const part of options.split('\n### portcullis ').slice(1)) {
    const [command, ...lines] = part.split('\n');
    const firstColumns = lines.filter((l) => /^\| `/.test(l)).map((l) => l.split('|')[1]);
    sections.set(command.trim(), flags(firstColumns.join(' ')));
  }
  return sections;
}

/** The commands `portcullis --help` lists. */
function commands(): string[] {
  const main = help();
  return main
    .slice(main.indexOf('Commands:'))
    .split('\n')
    .slice(1)
    .map((l) => /^ {2}([a-z]+(?: [a-z]+)?) {2,}/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined);
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run the suite with 'npm test', which builds first`);
});

test('docs/cli.md has an options section for exactly the commands --help lists', () => {
  expect(commands().length).toBeGreaterThanOrEqual(8);
  expect([...documented().keys()].sort()).toEqual(commands().sort());
});

test('each command prints in --help exactly the flags docs/cli.md lists for it', () => {
  const docs = documented();
  for (const command of commands()) {
    expect({ command, flags: flags(help(...command.split(' '))) }).toEqual({ command, flags: docs.get(command) });
  }
});

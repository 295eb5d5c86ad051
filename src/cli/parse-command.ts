/**
 * Argument parsing for the `portcullis` CLI: the command table, and options checked before
 * `node:util` parseArgs sees them, so a typo gets a short answer with a suggestion ("unknown
 * option --polcy; did you mean --policy?") instead of parseArgs' paragraph. Every error here is
 * a UsageError: exit code EXIT.USAGE.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

/** A usage error; `command` names the command whose --help to point at. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command = '',
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The commands, each with its subcommands (none for `start`). */
export const COMMANDS: Readonly<Record<string, readonly string[]>> = {
  start: [],
  policy: ['build', 'test', 'eval', 'replay'],
  audit: ['verify', 'keygen', 'query', 'export', 'serve'],
};

/** Edit distance with adjacent transpositions (optimal string alignment). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate closest to `word`, when it is close enough to be the one meant. */
export function suggest(word: string, candidates: readonly string[]): string | null {
  const bare = (s: string) => s.replace(/^-+/, '');
  let best: string | null = null;
  // Close: at most 2 edits (more for long words), and fewer edits than the word has letters.
  let bestDistance = Math.min(Math.max(2, Math.floor(bare(word).length / 3)) + 1, bare(word).length);
  for (const c of candidates) {
    const d = distance(bare(word), bare(c));
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** "unknown X; did you mean Y?" */
function unknown(what: string, word: string, candidates: readonly string[], command: string): UsageError {
  const hint = suggest(word, candidates);
  return new UsageError(`unknown ${what} ${word}${hint ? `; did you mean ${hint}?` : ''}`, command);
}

/** The error for a command or subcommand that does not exist. */
export function unknownCommand(argv: readonly string[]): UsageError {
  const [cmd, sub] = argv;
  const subs = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!subs) return unknown('command', cmd, Object.keys(COMMANDS), '');
  return unknown(
    'command',
    `${cmd} ${sub ?? ''}`.trim(),
    subs.map((s) => `${cmd} ${s}`),
    '',
  );
}

/** Rejects options the command does not have, before parseArgs. Stops at `--`. */
function checkOptions(command: string, args: readonly string[], options: ParseArgsOptionsConfig): void {
  const shorts = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const flags = Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') return;
    if (!arg.startsWith('-') || arg === '-') continue;
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0] : shorts.get(arg[1]);
    const option = name === undefined ? undefined : options[name];
    if (!option) throw unknown('option', arg.startsWith('--') ? arg.split('=')[0] : arg.slice(0, 2), flags, command);
    // A string option's value is the next argument, even when it starts with '-'.
    if (option.type === 'string' && !arg.includes('=') && (arg.startsWith('--') || arg.length === 2)) i++;
  }
}

/** parseArgs (strict) for `command`, after checking every option against `options`; at most `maxPositionals` arguments. */
export function parseCommand<O extends ParseArgsOptionsConfig>(command: string, args: string[], options: O, maxPositionals = 0) {
  checkOptions(command, args, options);
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message, command);
  }
  if (parsed.positionals.length > maxPositionals) throw new UsageError(`unexpected argument "${parsed.positionals[maxPositionals]}"`, command);
  return parsed;
}

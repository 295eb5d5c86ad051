/**
 * What a stdio MCP server is started with: its executable, resolved once when the bridge starts
 * so a typo fails at start-up rather than on the first session, and its environment, which is
 * built from a short allow-list of the gateway's variables plus the route's own. The gateway's
 * environment may hold other routes' secrets, so nothing else is inherited.
 */
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { Secret, revealSecret } from '../../secret';

/** The gateway variables a child inherits when they are set (close to the MCP SDK's default list). */
export const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'TMPDIR', 'USER', 'SHELL', 'TERM'] as const;

/** How to start one child. */
export interface StdioLaunch {
  /** Absolute path of the executable (command[0] resolved). */
  readonly file: string;
  /** The configured argv; argv[0] is passed to the child unchanged. */
  readonly argv: readonly string[];
  /** The child's whole environment. */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string | null;
}

/** The child's environment: the allow-listed gateway variables, then `extra` (which wins). */
export function childEnvironment(extra: Readonly<Record<string, string | Secret>>, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED_ENV) {
    const value = parent[name];
    // A value starting with `()` is an exported shell function (Shellshock); never pass one on.
    if (value !== undefined && !value.startsWith('()')) env[name] = value;
  }
  for (const [name, value] of Object.entries(extra)) env[name] = value instanceof Secret ? revealSecret(value) : value;
  return env;
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    if (!(await stat(file)).isFile()) return false;
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves `command` the way the child's exec would: a name with a slash against `cwd`, a bare
 * name on `searchPath` (the child's PATH). Returns the absolute path, or null when nothing
 * executable is found.
 */
export async function resolveExecutable(command: string, cwd: string, searchPath: string | undefined): Promise<string | null> {
  if (command.includes('/')) {
    const file = path.resolve(cwd, command);
    return (await isExecutableFile(file)) ? file : null;
  }
  for (const dir of (searchPath ?? '').split(path.delimiter)) {
    // An empty PATH entry means the current directory; a gateway should not run what happens to be there.
    if (dir === '' || !path.isAbsolute(dir)) continue;
    const file = path.join(dir, command);
    if (await isExecutableFile(file)) return file;
  }
  return null;
}

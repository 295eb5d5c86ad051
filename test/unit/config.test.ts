/** Config validation: every error names the file, the key path and the problem. */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseConfig } from '../../src/config/load';
import { schemaText, SCHEMA_FILE } from '../../src/config/write-schema';
import { ConfigError } from '../../src/errors';
import { revealSecret } from '../../src/secret';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-config-'));
mkdirSync(path.join(dir, 'policies'));
writeFileSync(path.join(dir, 'token'), 'file-secret\n');
const file = path.join(dir, 'portcullis.yaml');

const VALID = `
listen: 127.0.0.1:8080
policy:
  path: ./policies
  entrypoint: portcullis/decision
audit:
  path: ./audit
credentials:
  github: { type: bearer, env: GITHUB_TOKEN }
  billing: { type: header, header: X-Api-Key, file: ./token }
  legacy: { type: basic, username: svc, password_env: LEGACY_PASS }
agents:
  - id: support-bot
    key_sha256: "${'a'.repeat(64)}"
routes:
  - name: github
    prefix: /github/
    upstream: https://api.github.com/
    credential: github
`;
const env = { GITHUB_TOKEN: 'gh-secret', LEGACY_PASS: 'pw' };

function errorOf(text: string, e: NodeJS.ProcessEnv = env): ConfigError {
  try {
    parseConfig(text, file, { env: e });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

test('the issue example config is valid, resolved and frozen', () => {
  const c = parseConfig(VALID, file, { env });
  expect(c.listen).toMatchObject({ address: { kind: 'tcp', host: '127.0.0.1', port: 8080 }, allowedHosts: null, allowedOrigins: null });
  expect(c.policy.path).toBe(path.join(dir, 'policies'));
  expect(c.audit).toEqual({
    path: path.join(dir, 'audit'),
    durability: 'strict',
    signingKey: null,
    keyFile: path.join(dir, 'audit.key'),
    checkpoint: { everyRecords: 10000, everySeconds: 30 },
    rotate: { maxBytes: 64 * 1024 * 1024, maxAgeSeconds: 86400 },
    preallocateBytes: 1024 * 1024,
    sinks: [],
  });
  expect(c.routes[0]).toMatchObject({ name: 'github', origin: 'https://api.github.com', basePath: '/', credential: { name: 'github', type: 'bearer' } });
  expect(Object.isFrozen(c)).toBe(true);
  expect(Object.isFrozen(c.routes[0])).toBe(true);
  expect(JSON.stringify(c)).not.toContain('gh-secret');
  expect(JSON.stringify(c)).not.toContain('file-secret');
});

test('malformed YAML names the file and line', () => {
  const e = errorOf('policy:\n  path: [unclosed\n');
  expect(e.message).toContain(file);
  expect(e.message).toMatch(/invalid YAML/);
});

test('an unknown key is an error with its path and line', () => {
  const e = errorOf(VALID.replace('  entrypoint: portcullis/decision', '  entrypoint: portcullis/decision\n  colour: blue'));
  expect(e.keyPath).toBe('policy.colour');
  expect(e.message).toBe(
    `${file}:6:3: policy.colour: unknown key "colour" (expected one of: path, entrypoint, watch, poll_ms, opa, bundle, signing, require_tests, shadow) [CONFIG_UNKNOWN_KEY]`,
  );
});

test('a renamed key names its replacement', () => {
  const e = errorOf(VALID.replace('  path: ./audit', '  dir: ./audit'));
  expect(e.keyPath).toBe('audit.dir');
  expect(e.problem).toContain('use audit.path instead');
  const r = errorOf(VALID.replace('upstream: https://api.github.com/', 'target: https://api.github.com/'));
  expect(r.keyPath).toBe('routes[0].target');
  expect(r.problem).toContain('use routes[].upstream instead');
});

test('a missing secret refuses to start, naming the variable', () => {
  const e = errorOf(VALID, { LEGACY_PASS: 'pw' });
  expect(e.keyPath).toBe('credentials.github.env');
  expect(e.problem).toContain('GITHUB_TOKEN is not set');
});

test('a missing secret file is named', () => {
  const e = errorOf(VALID.replace('file: ./token', 'file: ./nope'));
  expect(e.keyPath).toBe('credentials.billing.file');
  expect(e.problem).toContain(path.join(dir, 'nope'));
});

test("with secrets: 'skip' no secret is read: they are placeholders that refuse to reveal themselves", () => {
  const c = parseConfig(VALID.replace('file: ./token', 'file: ./absent-token'), file, { env: {}, secrets: 'skip' });
  expect(c.secretsLoaded).toBe(false);
  const github = c.routes[0].credential;
  expect(github?.type === 'bearer' && String(github.token)).toBe('[REDACTED]');
  expect(() => github?.type === 'bearer' && revealSecret(github.token)).toThrow('the secret from env GITHUB_TOKEN was not loaded');
  expect(parseConfig(VALID, file, { env }).secretsLoaded).toBe(true);
});

test('a credential name that is not a name is shown (it is a key, not a secret)', () => {
  const e = errorOf(VALID.replace('  github: { type: bearer', '  "git hub": { type: bearer'));
  expect([e.code, e.keyPath, e.line]).toEqual(['CONFIG_FORMAT', 'credentials.git hub', 9]);
  expect(e.problem).toBe('name "git hub" is not a name of letters, digits, _ . - (at most 64)');
});

test('a route naming an unknown credential', () => {
  const e = errorOf(VALID.replace('credential: github', 'credential: gitlab'));
  expect(e.keyPath).toBe('routes[0].credential');
  expect(e.problem).toContain('unknown credential "gitlab"');
});

test('wrong types and formats', () => {
  expect(errorOf(VALID.replace('listen: 127.0.0.1:8080', 'listen: 8080')).keyPath).toBe('listen');
  expect(errorOf(VALID.replace('prefix: /github/', 'prefix: github')).keyPath).toBe('routes[0].prefix');
  expect(errorOf(VALID.replace(`"${'a'.repeat(64)}"`, '"plain-key"')).keyPath).toBe('agents[0].key_sha256');
  expect(errorOf(VALID.replace('path: ./audit', 'path: ./audit\n  durability: sometimes')).problem).toMatch(/is not one of "strict", "relaxed"/);
  expect(errorOf(VALID.replace('type: bearer', 'type: oauth')).keyPath).toMatch(/^credentials\.github/);
});

test('required sections and duplicates', () => {
  expect(errorOf('policy: { path: ./policies }\naudit: { path: ./a }\n').problem).toBe('missing required key "routes"');
  const dup = `${VALID}  - name: github\n    prefix: /gh2/\n    upstream: https://x.example/\n`;
  expect(errorOf(dup).keyPath).toBe('routes[1].name');
  expect(errorOf(VALID.replace('policy:\n', 'policy:\n  path: ./p2\npolicy2:\n')).message).toContain(file);
});

test('upstream URLs may not embed credentials', () => {
  expect(errorOf(VALID.replace('https://api.github.com/', 'https://u:p@api.github.com/')).keyPath).toBe('routes[0].upstream');
});

test('a missing policy directory is named', () => {
  expect(errorOf(VALID.replace('path: ./policies', 'path: ./missing')).keyPath).toBe('policy.path');
});

test('loadConfig names an unreadable file', () => {
  expect(() => loadConfig(path.join(dir, 'absent.yaml'))).toThrow(/absent\.yaml: \(root\): cannot read the file \(ENOENT\) \[CONFIG_FILE_UNREADABLE\]/);
});

test('forward_range: off by default on routes with a credential and on MCP routes, on elsewhere; a boolean', () => {
  const routes = `${VALID}  - { name: open, prefix: /open/, upstream: "https://x.example/" }
  - { name: opted, prefix: /opted/, upstream: "https://x.example/", credential: github, forward_range: true }
  - { name: closed, prefix: /closed/, upstream: "https://x.example/", forward_range: false }
  - { name: tools, kind: mcp, prefix: /mcp/, upstream: "https://x.example/mcp" }
`;
  const byName = Object.fromEntries(parseConfig(routes, file, { env }).routes.map((r) => [r.name, r.forwardRange]));
  expect(byName).toEqual({ github: false, open: true, opted: true, closed: false, tools: false });
  const e = errorOf(VALID.replace('credential: github', 'credential: github\n    forward_range: "yes"'));
  expect(e.keyPath).toBe('routes[0].forward_range');
  expect(e.problem).toMatch(/expected true or false/);
});

test('the published JSON Schema is up to date (npm run schema)', () => {
  const published = readFileSync(path.join(__dirname, '../..', SCHEMA_FILE), 'utf8');
  expect(published).toBe(schemaText());
});

describe('MCP routes', () => {
  const mcpRoute = (extra: string) => `${VALID}  - name: tools\n    prefix: /mcp/tools/\n    kind: mcp\n${extra}`;

  test('a remote MCP route keeps its endpoint path exactly; deny_as defaults to result', () => {
    const c = parseConfig(mcpRoute('    upstream: http://127.0.0.1:3001/mcp\n'), file, { env });
    expect(c.routes[1]).toMatchObject({ kind: 'mcp', mcp: { denyAs: 'result', endpoint: '/mcp', stdio: null } });
    expect(c.routes[0]).toMatchObject({ kind: 'http', mcp: null });
  });

  test('a stdio MCP route resolves its env secrets and restart policy', () => {
    const c = parseConfig(
      mcpRoute(
        '    command: [npx, -y, server]\n    env: { TOKEN: { env: GITHUB_TOKEN }, MODE: ro }\n    restart: { initial_delay_ms: 10, max_delay_ms: 20 }\n',
      ),
      file,
      { env },
    );
    const stdio = c.routes[1].mcp!.stdio!;
    expect(stdio.command).toEqual(['npx', '-y', 'server']);
    expect(stdio.env.MODE).toBe('ro');
    expect(String(stdio.env.TOKEN)).toBe('[REDACTED]');
    expect(stdio.restart).toEqual({ initialDelayMs: 10, maxDelayMs: 20 });
    expect(stdio.cwd).toBe(dir);
  });

  test('mistakes name the route key', () => {
    expect(errorOf(mcpRoute('')).problem).toContain('needs upstream (a remote MCP server) or command');
    expect(errorOf(mcpRoute('    upstream: http://x/mcp\n    command: [srv]\n')).problem).toContain('not both');
    expect(errorOf(mcpRoute('    command: [srv]\n    credential: github\n')).keyPath).toBe('routes[1].credential');
    expect(errorOf(mcpRoute('    upstream: http://x/mcp\n    env: { A: b }\n')).keyPath).toBe('routes[1].env');
    expect(errorOf(VALID.replace('credential: github', 'credential: github\n    deny_as: error')).problem).toContain('only for routes of kind mcp');
    expect(errorOf(mcpRoute('    command: [srv]\n    env: { TOKEN: { env: NOT_SET } }\n')).keyPath).toBe('routes[1].env.TOKEN.env');
    expect(errorOf(mcpRoute('    command: [srv]\n    restart: { initial_delay_ms: 500, max_delay_ms: 20 }\n')).keyPath).toBe('routes[1].restart.max_delay_ms');
    expect(errorOf(VALID.replace('credential: github', 'credential: github\n    kind: grpc')).keyPath).toBe('routes[0].kind');
  });
});

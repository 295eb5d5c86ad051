/**
 * One broken config per kind of config error: each names the file, the line (and column), the
 * key path and a stable code, says what was wrong and what was expected in words (never Ajv's
 * own "must match pattern"), and never shows a secret value.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { CONFIG_CODES, ConfigError } from '../../src/errors';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-config-errors-'));
mkdirSync(path.join(dir, 'policies'));
writeFileSync(path.join(dir, 'empty-token'), '');
writeFileSync(path.join(dir, 'two-lines'), 'line-one-secret\nline-two-secret\n');
const file = path.join(dir, 'portcullis.yaml');
/** A value that must never appear in an error: it is in the environment of every case. */
const SECRET = 'ghp_TOPSECRET0123456789';
const env = { GITHUB_TOKEN: SECRET };

/** A valid config with `lines` spliced in after line `at` (1-based), so line numbers are easy to read. */
function config(edit: (lines: string[]) => void): string {
  const lines = [
    'policy:', //                                   1
    '  path: ./policies', //                        2
    'audit:', //                                    3
    '  path: ./audit', //                           4
    'credentials:', //                              5
    '  github:', //                                 6
    '    type: bearer', //                          7
    '    env: GITHUB_TOKEN', //                     8
    'routes:', //                                   9
    '  - name: github', //                         10
    '    prefix: /github/', //                     11
    '    upstream: https://api.github.com/', //    12
    '    credential: github', //                   13
  ];
  edit(lines);
  return `${lines.join('\n')}\n`;
}
const set = (n: number, text: string) => (l: string[]) => {
  l[n - 1] = text;
};
const add =
  (after: number, ...text: string[]) =>
  (l: string[]) =>
    void l.splice(after, 0, ...text);

interface Case {
  readonly name: string;
  readonly yaml: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly code: keyof typeof CONFIG_CODES;
  readonly keyPath: string;
  readonly line: number;
  readonly column?: number;
  readonly problem: RegExp;
}

/** An OAuth credential `crm` spliced in after the static one (lines 9–12, then `more`, then the routes). */
const oauth = (type: string, ...more: string[]) =>
  add(8, '  crm:', `    type: ${type}`, '    token_url: https://as.test/token', '    client_id: portcullis', ...more);

const CASES: Case[] = [
  {
    name: 'a token exchange on a route that takes no tokens',
    yaml: config((l) => {
      l.splice(
        8,
        0,
        '  crm:',
        '    type: oauth2_token_exchange',
        '    token_url: https://as.test/token',
        '    client_id: portcullis',
        '    client_secret_env: GITHUB_TOKEN',
      );
      l[17] = '    credential: crm';
    }),
    code: 'CONFIG_CONFLICT',
    keyPath: 'routes[0].credential',
    line: 18,
    problem: /^credential crm is a token exchange, which needs callers identified by a token/,
  },
  {
    name: 'an unknown OAuth client auth method',
    yaml: config(oauth('oauth2_client_credentials', '    auth_method: client_secret_jwt', '    client_secret_env: GITHUB_TOKEN')),
    code: 'CONFIG_ENUM',
    keyPath: 'credentials.crm.auth_method',
    line: 13,
    problem: /^auth_method \(value hidden\) is not one of "client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"$/,
  },
  {
    name: 'a missing private key file',
    yaml: config(oauth('oauth2_client_credentials', '    auth_method: private_key_jwt', '    private_key_file: ./no-such-key.pem')),
    code: 'CONFIG_PATH',
    keyPath: 'credentials.crm.private_key_file',
    line: 14,
    problem: /^cannot read .*no-such-key\.pem \(ENOENT\): expected a PEM private key$/,
  },
  {
    name: 'a private key file that holds no key',
    yaml: config(oauth('oauth2_client_credentials', '    auth_method: private_key_jwt', '    private_key_file: ./two-lines')),
    code: 'CONFIG_PATH',
    keyPath: 'credentials.crm.private_key_file',
    line: 14,
    problem: /two-lines is not a PEM file: expected a PEM private key$/,
  },
  {
    name: 'OAuth scopes that are not a list',
    yaml: config(oauth('oauth2_client_credentials', '    client_secret_env: GITHUB_TOKEN', '    scope: tickets:read')),
    code: 'CONFIG_TYPE',
    keyPath: 'credentials.crm.scope',
    line: 14,
    problem: /^scope is a string \(value hidden: it is under a credential or secret\): expected a list/,
  },
  {
    name: 'a client secret method without its secret',
    yaml: config(oauth('oauth2_client_credentials', '    auth_method: client_secret_post')),
    code: 'CONFIG_MISSING_KEY',
    keyPath: 'credentials.crm',
    line: 10,
    problem: /^set the secret's source: client_secret_env or client_secret_file$/,
  },
  {
    name: 'a client secret for a method that takes none',
    yaml: config(oauth('oauth2_client_credentials', '    auth_method: tls_client_auth', '    client_secret_env: GITHUB_TOKEN')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'credentials.crm.client_secret_env',
    line: 14,
    problem: /^client_secret_env does not go with auth_method tls_client_auth \(it takes client_cert_file, client_key_file\)$/,
  },
  {
    name: 'both token_url and issuer',
    yaml: config(oauth('oauth2_client_credentials', '    client_secret_env: GITHUB_TOKEN', '    issuer: https://as.test')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'credentials.crm.issuer',
    line: 14,
    problem: /^set either token_url or issuer/,
  },
  {
    name: 'a token exchange actor that is not defined',
    yaml: config(oauth('oauth2_token_exchange', '    client_secret_env: GITHUB_TOKEN', '    actor: nobody')),
    code: 'CONFIG_UNKNOWN_CREDENTIAL',
    keyPath: 'credentials.crm.actor',
    line: 14,
    problem: /^unknown credential "nobody": expected the name of an oauth2_client_credentials credential$/,
  },
  {
    name: 'a token exchange actor that is not a client credentials one',
    yaml: config(oauth('oauth2_token_exchange', '    client_secret_env: GITHUB_TOKEN', '    actor: github')),
    code: 'CONFIG_VALUE',
    keyPath: 'credentials.crm.actor',
    line: 14,
    problem: /^actor "github" is not an oauth2_client_credentials credential/,
  },
  {
    name: 'YAML syntax',
    yaml: config(set(11, '    prefix: "/github/')),
    code: 'CONFIG_YAML_SYNTAX',
    keyPath: 'routes[0].prefix',
    line: 11,
    problem: /^invalid YAML: Missing closing "quote \(the parser noticed at line 14, column 1\)$/,
  },
  {
    name: 'duplicate key',
    yaml: config(add(2, '  path: ./other')),
    code: 'CONFIG_DUPLICATE_KEY',
    keyPath: 'policy.path',
    line: 3,
    column: 3,
    problem: /^duplicate key "path"$/,
  },
  {
    name: 'YAML alias',
    yaml: config((l) => {
      l[11] = '    upstream: &u https://api.github.com/';
      l.push('  - { name: b, prefix: /b/, upstream: *u }');
    }),
    code: 'CONFIG_YAML_ALIAS',
    keyPath: 'routes[1].upstream',
    line: 14,
    column: 39,
    problem: /aliases \(\*name\) are not allowed/,
  },
  {
    name: 'unknown key',
    yaml: config(add(2, '  colour: blue')),
    code: 'CONFIG_UNKNOWN_KEY',
    keyPath: 'policy.colour',
    line: 3,
    column: 3,
    problem: /^unknown key "colour" \(expected one of: path, entrypoint, watch, poll_ms, opa, bundle, signing, require_tests, shadow\)$/,
  },
  {
    name: 'renamed key',
    yaml: config(set(12, '    target: https://api.github.com/')),
    code: 'CONFIG_UNKNOWN_KEY',
    keyPath: 'routes[0].target',
    line: 12,
    column: 5,
    problem: /use routes\[\]\.upstream instead/,
  },
  {
    name: 'missing key',
    yaml: config(set(11, '    kind: http')),
    code: 'CONFIG_MISSING_KEY',
    keyPath: 'routes[0].prefix',
    line: 10,
    problem: /^missing required key "prefix"$/,
  },
  {
    name: 'wrong type',
    yaml: config(add(13, '    forward_range: "yes"')),
    code: 'CONFIG_TYPE',
    keyPath: 'routes[0].forward_range',
    line: 14,
    column: 20,
    problem: /^forward_range is the string "yes": expected true or false$/,
  },
  {
    name: 'number out of range',
    yaml: config(add(4, '  rotate: { max_bytes: 100 }')),
    code: 'CONFIG_RANGE',
    keyPath: 'audit.rotate.max_bytes',
    line: 5,
    problem: /^max_bytes 100 is out of range: expected at least 4096$/,
  },
  {
    name: 'port out of range',
    yaml: config(add(0, 'listen: 127.0.0.1:70000')),
    code: 'CONFIG_RANGE',
    keyPath: 'listen',
    line: 1,
    column: 9,
    problem: /^port 70000 is out of range: expected 0–65535$/,
  },
  {
    name: 'a listen address that is neither host:port nor unix:PATH',
    yaml: config(add(0, 'listen: /run/portcullis.sock')),
    code: 'CONFIG_FORMAT',
    keyPath: 'listen',
    line: 1,
    column: 9,
    problem: /^listen "\/run\/portcullis\.sock" is not host:port \(e\.g\. 127\.0\.0\.1:8080\) or unix:PATH/,
  },
  {
    name: 'an unquoted socket mode (YAML reads 0660 as the number 660)',
    yaml: config(add(0, 'listen: unix:./gw.sock', 'socket_mode: 0660')),
    code: 'CONFIG_TYPE',
    keyPath: 'socket_mode',
    line: 2,
    column: 14,
    problem: /^socket_mode is the number 660: expected an octal file mode in quotes, e\.g\. "0660"$/,
  },
  {
    name: 'a socket mode on a TCP listener',
    yaml: config(add(4, 'admin:', '  listen: 127.0.0.1:9091', '  socket_mode: "0600"')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'admin.socket_mode',
    line: 7,
    problem: /^socket_mode only goes with a unix:PATH listen address$/,
  },
  {
    name: 'a socket path longer than a Unix socket can be',
    yaml: config(add(0, `listen: unix:/${'s'.repeat(120)}.sock`)),
    code: 'CONFIG_RANGE',
    keyPath: 'listen',
    line: 1,
    problem: /^socket path \/s+\.sock is 126 bytes: expected at most 107$/,
  },
  {
    name: 'an allowed host with a path',
    yaml: config(add(0, 'allowed_hosts:', '  - localhost', '  - gw.internal/x')),
    code: 'CONFIG_FORMAT',
    keyPath: 'allowed_hosts[1]',
    line: 3,
    column: 5,
    problem: /^allowed_hosts\[1\] "gw\.internal\/x" is not a host name or address, with an optional :port/,
  },
  {
    name: 'an allowed host with a port out of range',
    yaml: config(add(4, 'admin:', '  allowed_hosts: ["localhost:99999"]')),
    code: 'CONFIG_RANGE',
    keyPath: 'admin.allowed_hosts[0]',
    line: 6,
    problem: /^port 99999 is out of range: expected 0–65535$/,
  },
  {
    name: 'an allowed origin with a path',
    yaml: config(add(0, 'allowed_origins: ["https://app.example.com/"]')),
    code: 'CONFIG_FORMAT',
    keyPath: 'allowed_origins[0]',
    line: 1,
    problem: /^allowed_origins\[0\] "https:\/\/app\.example\.com\/" is not an origin: http\(s\):\/\/host\[:port\], no path$/,
  },
  {
    name: 'format',
    yaml: config(set(11, '    prefix: github')),
    code: 'CONFIG_FORMAT',
    keyPath: 'routes[0].prefix',
    line: 11,
    column: 13,
    problem: /^prefix "github" is not a path that starts and ends with \/, e\.g\. \/github\/$/,
  },
  {
    name: 'not an http(s) URL',
    yaml: config(set(12, '    upstream: ftp://x')),
    code: 'CONFIG_FORMAT',
    keyPath: 'routes[0].upstream',
    line: 12,
    problem: /^upstream "ftp:\/\/x" is not an http\(s\) URL$/,
  },
  {
    name: 'enum',
    yaml: config(add(4, '  durability: sometimes')),
    code: 'CONFIG_ENUM',
    keyPath: 'audit.durability',
    line: 5,
    problem: /^durability "sometimes" is not one of "strict", "relaxed"$/,
  },
  {
    name: 'a header a credential may not use',
    yaml: config((l) => void l.splice(6, 1, '    type: header', '    header: Host')),
    code: 'CONFIG_VALUE',
    keyPath: 'credentials.github.header',
    line: 8,
    problem: /^header "Host" cannot carry a credential/,
  },
  {
    name: 'URL with credentials',
    yaml: config(set(12, '    upstream: https://u:p@api.github.com/')),
    code: 'CONFIG_URL',
    keyPath: 'routes[0].upstream',
    line: 12,
    problem: /must not embed credentials/,
  },
  {
    name: 'conflicting keys',
    yaml: config(add(13, '    deny_as: error')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'routes[0].deny_as',
    line: 14,
    column: 5,
    problem: /only for routes of kind mcp/,
  },
  {
    name: 'duplicate route name',
    yaml: config(add(13, '  - name: github', '    prefix: /gh2/', '    upstream: https://x.example/')),
    code: 'CONFIG_DUPLICATE_NAME',
    keyPath: 'routes[1].name',
    line: 14,
    problem: /duplicate route name "github" \(first at line 10\)/,
  },
  {
    name: 'duplicate route prefix',
    yaml: config(add(13, '  - name: mirror', '    prefix: /github/', '    upstream: https://x.example/')),
    code: 'CONFIG_DUPLICATE_PREFIX',
    keyPath: 'routes[1].prefix',
    line: 15,
    column: 13,
    problem: /^duplicate route prefix "\/github\/" \(first at line 11, route "github"\)$/,
  },
  {
    name: 'unknown credential',
    yaml: config(set(13, '    credential: gitlab')),
    code: 'CONFIG_UNKNOWN_CREDENTIAL',
    keyPath: 'routes[0].credential',
    line: 13,
    problem: /unknown credential "gitlab": expected one of the names under credentials \(github\)/,
  },
  {
    name: 'missing env var',
    yaml: config(() => undefined),
    env: {},
    code: 'CONFIG_MISSING_ENV',
    keyPath: 'credentials.github.env',
    line: 8,
    column: 5,
    problem: /^environment variable GITHUB_TOKEN is not set or empty$/,
  },
  {
    name: 'empty secret file',
    yaml: config(set(8, '    file: ./empty-token')),
    code: 'CONFIG_SECRET_FILE',
    keyPath: 'credentials.github.file',
    line: 8,
    column: 5,
    problem: /empty-token is empty$/,
  },
  {
    name: 'secret file of two lines',
    yaml: config(set(8, '    file: ./two-lines')),
    code: 'CONFIG_SECRET_FILE',
    keyPath: 'credentials.github.file',
    line: 8,
    problem: /holds more than one line$/,
  },
  {
    name: 'two secret sources',
    yaml: config(add(8, '    file: ./two-lines')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'credentials.github.file',
    line: 9,
    problem: /exactly one source/,
  },
  {
    name: 'missing policy directory',
    yaml: config(set(2, '  path: ./missing')),
    code: 'CONFIG_PATH',
    keyPath: 'policy.path',
    line: 2,
    column: 9,
    problem: /missing does not exist/,
  },
  {
    name: 'a token pasted where a variable name belongs is not shown',
    yaml: config(set(8, `    env: ${SECRET}-x`)),
    code: 'CONFIG_FORMAT',
    keyPath: 'credentials.github.env',
    line: 8,
    problem: /^env \(value hidden\) is not an environment variable name/,
  },
  {
    name: 'a pasted token under an unknown key is not shown',
    yaml: config(add(8, `    token: ${SECRET}`)),
    code: 'CONFIG_UNKNOWN_KEY',
    keyPath: 'credentials.github.token',
    line: 9,
    problem: /^unknown key "token" \(expected one of: type, env, file, rotation_grace_s, reload_poll_ms\)$/,
  },
  {
    name: 'a route accepting an identity method the gateway does not have',
    yaml: config(add(13, '    identity:', '      methods: [api_key, jwt]')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'routes[0].identity.methods[1]',
    line: 15,
    problem: /^identity method jwt is not configured for the gateway \(add identity\.jwt\)$/,
  },
  {
    name: 'route scopes without a token method',
    yaml: config(add(13, '    identity:', '      required_scopes: [tickets:read]')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'routes[0].identity.required_scopes',
    line: 15,
    problem: /^required_scopes are the scopes of a token: configure identity\.jwt$/,
  },
  {
    name: 'one credential and several on the same route',
    yaml: config(add(13, '    credentials: { read: github }')),
    code: 'CONFIG_CONFLICT',
    keyPath: 'routes[0].credentials',
    line: 14,
    problem: /^set either credential \(one\) or credentials \(several, chosen by the decision\), not both$/,
  },
  {
    name: 'a default credential that is not one of the labels',
    yaml: config((l) => l.splice(12, 1, '    credentials: { read: github }', '    default_credential: write')),
    code: 'CONFIG_UNKNOWN_CREDENTIAL',
    keyPath: 'routes[0].default_credential',
    line: 14,
    problem: /^default_credential "write" is not a label under credentials \(read\)$/,
  },
  {
    name: 'a labelled credential that is not configured',
    yaml: config((l) => l.splice(12, 1, '    credentials: { read: github, write: github-rw }')),
    code: 'CONFIG_UNKNOWN_CREDENTIAL',
    keyPath: 'routes[0].credentials.write',
    line: 13,
    problem: /^unknown credential "github-rw": expected one of the names under credentials \(github\)$/,
  },
];

function errorOf(c: Case): ConfigError {
  try {
    parseConfig(c.yaml, file, { env: c.env ?? env });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err;
  }
  throw new Error(`${c.name}: expected a ConfigError`);
}

test.each(CASES)('$name: $code at line $line, $keyPath', (c) => {
  const e = errorOf(c);
  expect({ code: e.code, keyPath: e.keyPath, line: e.line }).toEqual({ code: c.code, keyPath: c.keyPath, line: c.line });
  if (c.column !== undefined) expect(e.column).toBe(c.column);
  expect(e.problem).toMatch(c.problem);
  expect(e.message).toBe(`${file}:${e.line}${e.column ? `:${e.column}` : ''}: ${c.keyPath}: ${e.problem} [${c.code}]`);
  expect(e.message).not.toMatch(/must match|invalid format|must be equal|must NOT/);
  for (const secret of [SECRET, 'line-one-secret', 'line-two-secret']) expect(e.message).not.toContain(secret);
});

test('every code in the table is used by a case, or named in a test of the gateway (signing key, stdio command) or of loadConfig (unreadable file)', () => {
  const elsewhere = ['CONFIG_FILE_UNREADABLE', 'CONFIG_SIGNING_KEY', 'CONFIG_STDIO_COMMAND', 'CONFIG_RESTART_REQUIRED'];
  const used = new Set([...CASES.map((c) => c.code), ...elsewhere]);
  expect(Object.keys(CONFIG_CODES).filter((code) => !used.has(code as never))).toEqual([]);
});

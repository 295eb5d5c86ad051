/**
 * A start that fails leaves nothing behind: the gateway checks everything that can refuse it
 * (its config and secrets, the signing key, the policy, the stdio commands) before it generates
 * a signing key or opens the audit trail. Each case starts a real gateway (real OPA, a real
 * stdio spawn attempt) and then looks at the audit directory and the key file beside it.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load';
import { ConfigError, PolicyBuildError } from '../../src/errors';
import { startGateway } from '../../src/gateway';
import { createLogger } from '../../src/observability/logger';
import '../helpers/harness'; // sets PORTCULLIS_OPA

const GOOD_POLICY = 'package portcullis\n\ndefault decision := false\n';
const quiet = () => createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));

/** A config dir with a policy; `extra` is appended to the YAML (lines of a route or a key). */
function setup(policy: string, extra = '', auditExtra = '', listen = '127.0.0.1:0'): { dir: string; file: string; yaml: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-start-failure-'));
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'policies', 'main.rego'), policy);
  const yaml = `listen: ${listen}
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit:
  path: ./audit
${auditExtra}routes:
  - { name: up, prefix: /up/, upstream: "http://127.0.0.1:1/" }
${extra}`;
  const file = path.join(dir, 'portcullis.yaml');
  writeFileSync(file, yaml);
  return { dir, file, yaml };
}

/** Everything in and beside the audit directory: the key file and the trail's files with their contents. */
function trailState(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (existsSync(path.join(dir, 'audit.key'))) out['audit.key'] = readFileSync(path.join(dir, 'audit.key'), 'utf8');
  const audit = path.join(dir, 'audit');
  if (existsSync(audit)) for (const f of readdirSync(audit)) out[`audit/${f}`] = readFileSync(path.join(audit, f), 'utf8');
  return out;
}

async function failedStart(file: string, yaml: string, env: NodeJS.ProcessEnv = {}): Promise<Error> {
  try {
    const gw = await startGateway(parseConfig(yaml, file, { env }), { logger: quiet() });
    await gw.close();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the start to fail');
}

test('a policy that does not compile: no signing key generated, no trail created', async () => {
  const { dir, file, yaml } = setup('package portcullis\n\ndecision := {"allow": true\n');
  const err = await failedStart(file, yaml);
  expect(err).toBeInstanceOf(PolicyBuildError);
  expect(trailState(dir)).toEqual({});
});

test('a stdio command that cannot run: a config error at its line, no key, no trail', async () => {
  const stdio = '  - name: tools\n    kind: mcp\n    prefix: /mcp/\n    command: [/nonexistent/portcullis-test-server]\n';
  const { dir, file, yaml } = setup(GOOD_POLICY, stdio);
  const err = await failedStart(file, yaml);
  expect(err).toBeInstanceOf(ConfigError);
  expect(err).toMatchObject({ code: 'CONFIG_STDIO_COMMAND', keyPath: 'routes[1].command', line: 11 });
  expect(trailState(dir)).toEqual({});
});

test('a signing key that is not a key: a config error at its line, nothing written', async () => {
  const { dir, file, yaml } = setup(GOOD_POLICY, '', '  signing_key: { env: AUDIT_KEY }\n');
  const err = await failedStart(file, yaml, { AUDIT_KEY: 'PRIVATE+KEY+not-really' });
  expect(err).toMatchObject({ code: 'CONFIG_SIGNING_KEY', keyPath: 'audit.signing_key', line: 6 });
  expect(err.message).not.toContain('not-really');
  expect(trailState(dir)).toEqual({});
});

test('a missing secret refuses the config before anything starts', () => {
  const { dir, file, yaml } = setup(GOOD_POLICY, '', '  signing_key: { env: AUDIT_KEY }\n');
  expect(() => parseConfig(yaml, file, { env: {} })).toThrow(expect.objectContaining({ code: 'CONFIG_MISSING_ENV', line: 6 }) as Error);
  expect(trailState(dir)).toEqual({});
});

test('a listen port in use: the start fails before the trail is opened', async () => {
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
  try {
    const { dir, file, yaml } = setup(GOOD_POLICY, '', '', `127.0.0.1:${(busy.address() as net.AddressInfo).port}`);
    expect((await failedStart(file, yaml)).message).toMatch(/EADDRINUSE/);
    expect(trailState(dir)).toEqual({});
  } finally {
    busy.close();
  }
});

test('a config loaded without its secrets cannot start a gateway', async () => {
  const { dir, file, yaml } = setup(GOOD_POLICY);
  await expect(startGateway(parseConfig(yaml, file, { env: {}, secrets: 'skip' }), { logger: quiet() })).rejects.toThrow(/loaded without its secrets/);
  expect(trailState(dir)).toEqual({});
});

test('after a good start, a failed one adds no record to the trail and keeps the key', async () => {
  const { dir, file, yaml } = setup(GOOD_POLICY);
  const gw = await startGateway(parseConfig(yaml, file, { env: {} }), { logger: quiet() });
  await gw.close();
  const before = trailState(dir);
  expect(Object.keys(before)).toEqual(expect.arrayContaining(['audit.key']));
  writeFileSync(path.join(dir, 'policies', 'main.rego'), 'package portcullis\n\ndecision := {\n');
  expect(await failedStart(file, yaml)).toBeInstanceOf(PolicyBuildError);
  expect(trailState(dir)).toEqual(before);
});

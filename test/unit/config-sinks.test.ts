/** audit.sinks in portcullis.yaml: resolved with defaults and secrets, and precise errors. */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { revealSecret } from '../../src/secret';
import { ConfigError } from '../../src/errors';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-config-sinks-'));
mkdirSync(path.join(dir, 'policies'));
writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
writeFileSync(path.join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\nkey-material\n-----END PRIVATE KEY-----\n');
writeFileSync(path.join(dir, 'hec-token'), 'hec-secret-from-file\n');
const file = path.join(dir, 'portcullis.yaml');
const env = { HOOK_KEY: 'hook-secret' };

const yaml = (sinks: string) => `
policy: { path: ./policies }
audit:
  path: ./audit
  sinks:
${sinks}
routes:
  - { name: up, prefix: /up/, upstream: "http://127.0.0.1:1/" }
`;

const ALL = `
    - name: siem
      type: syslog
      address: logs.example.com:6514
      tls: { ca: ./ca.pem, cert: ./ca.pem, key: ./key.pem }
    - name: hook
      type: webhook
      url: https://hooks.example.com/audit
      headers: { X-Api-Key: { env: HOOK_KEY }, X-Source: portcullis }
    - name: splunk
      type: splunk_hec
      url: https://splunk.example.com:8088/services/collector/event
      token: { file: ./hec-token }
      index: security
`;

function errorOf(text: string): ConfigError {
  try {
    parseConfig(text, file, { env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

test('three sinks resolve with their defaults; secrets and keys stay Secrets', () => {
  const c = parseConfig(yaml(ALL), file, { env });
  const [siem, hook, splunk] = c.audit.sinks;
  expect(siem).toMatchObject({
    name: 'siem',
    type: 'syslog',
    host: 'logs.example.com',
    port: 6514,
    facility: 13,
    appName: 'portcullis',
    hostname: null,
    bom: false,
    confirmMs: 200,
    maxBackoffMs: 30000,
  });
  expect(siem.type === 'syslog' && siem.tls?.ca).toContain('BEGIN CERTIFICATE');
  expect(hook).toMatchObject({ name: 'hook', type: 'webhook', url: 'https://hooks.example.com/audit', format: 'json', timeoutMs: 10000 });
  expect(hook.type === 'webhook' && revealSecret(hook.headers['X-Api-Key'] as never)).toBe('hook-secret');
  expect(splunk).toMatchObject({ type: 'splunk_hec', index: 'security', source: 'portcullis', sourcetype: 'portcullis:audit' });
  expect(splunk.type === 'splunk_hec' && revealSecret(splunk.token)).toBe('hec-secret-from-file');
  const printed = JSON.stringify(c);
  for (const secret of ['hook-secret', 'hec-secret-from-file', 'key-material']) expect(printed).not.toContain(secret);
  expect(Object.isFrozen(c.audit.sinks)).toBe(true);
  expect(Object.isFrozen(siem)).toBe(true);
});

test('no sinks: an empty list', () => {
  expect(
    parseConfig('policy: { path: ./policies }\naudit: { path: ./a }\nroutes: [{ name: up, prefix: /up/, upstream: "http://h/" }]\n', file).audit.sinks,
  ).toEqual([]);
});

test('duplicate sink names are an error naming the second', () => {
  const e = errorOf(yaml('    - { name: a, type: webhook, url: "http://h/" }\n    - { name: a, type: syslog, address: "h:514" }'));
  expect(e.keyPath).toBe('audit.sinks[1].name');
  expect(e.problem).toBe('duplicate sink name "a"');
});

test("an unknown key is reported against the sink's own type, with a hint for common mistakes", () => {
  const e = errorOf(yaml('    - { name: a, type: webhook, url: "http://h/", colour: blue }'));
  expect(e.keyPath).toBe('audit.sinks[0].colour');
  expect(e.problem).toBe('unknown key "colour" (expected one of: name, max_backoff_ms, type, url, timeout_ms, tls, headers, format)');
  const h = errorOf(yaml('    - { name: a, type: syslog, host: h }'));
  expect(h.keyPath).toBe('audit.sinks[0].host');
  expect(h.problem).toMatch(/use audit\.sinks\[\]\.address/);
});

test('missing and invalid values name the key', () => {
  expect(errorOf(yaml('    - { name: a, type: splunk_hec, url: "http://h/" }')).problem).toBe('missing required key "token"');
  expect(errorOf(yaml('    - { name: a, type: kafka }')).keyPath).toBe('audit.sinks[0].type');
  expect(errorOf(yaml('    - { name: a, type: syslog, address: "h:514", facility: 24 }')).keyPath).toBe('audit.sinks[0].facility');
  expect(errorOf(yaml('    - { name: a, type: syslog, address: "h:0" }')).keyPath).toBe('audit.sinks[0].address');
  expect(errorOf(yaml('    - { name: ../x, type: webhook, url: "http://h/" }')).keyPath).toBe('audit.sinks[0].name');
  expect(errorOf(yaml('    - { name: a, type: webhook, url: "http://u:p@h/" }')).keyPath).toBe('audit.sinks[0].url');
  expect(errorOf(yaml('    - { name: a, type: webhook, url: "http://h/", headers: { Content-Type: text/plain } }')).keyPath).toBe(
    'audit.sinks[0].headers.Content-Type',
  );
  expect(errorOf(yaml('    - { name: a, type: webhook, url: "http://h/", headers: { X-K: { env: ABSENT } } }')).problem).toMatch(/ABSENT is not set/);
  expect(errorOf(yaml('    - { name: a, type: syslog, address: "h:6514", tls: { ca: ./nope.pem } }')).keyPath).toBe('audit.sinks[0].tls.ca');
  expect(errorOf(yaml('    - { name: a, type: syslog, address: "h:6514", tls: { cert: ./ca.pem } }')).keyPath).toBe('audit.sinks[0].tls');
});

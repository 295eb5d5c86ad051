/** `policy.poll_ms`: its default, and the bounds the schema enforces. */
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-poll-'));
mkdirSync(path.join(dir, 'policies'));
const file = path.join(dir, 'portcullis.yaml');
const yaml = (policy: string) =>
  `policy: { path: ./policies${policy} }\naudit: { path: ./audit }\nroutes:\n  - { name: up, prefix: /up/, upstream: "http://127.0.0.1:1/" }\n`;

test('poll_ms defaults to 2000 and can be set', () => {
  expect(parseConfig(yaml(''), file).policy.pollMs).toBe(2000);
  expect(parseConfig(yaml(', poll_ms: 500'), file).policy.pollMs).toBe(500);
});

test.each(['50', '0', '1.5', '"2000"'])('poll_ms: %s is refused, naming the key', (value) => {
  expect(() => parseConfig(yaml(`, poll_ms: ${value}`), file)).toThrow(ConfigError);
  expect(() => parseConfig(yaml(`, poll_ms: ${value}`), file)).toThrow(/policy\.poll_ms/);
});

/** A trail for the auditor's view tests: written by a real gateway, with attacker-controlled text in its records. */
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keyHash, rawRequest, startTestGateway, startUpstream } from './harness';

const KEY = 'audit-serve-key';
export const HOSTILE_PATH = '/up/<script>alert(1)</script>/javascript:alert(2)';
export const HOSTILE_REASON = '<img src=x onerror=alert(3)><svg onload=alert(4)></svg><style>body{display:none}</style>';

/** Writes a trail with allowed and denied REST calls, hostile text included; returns its directory and key file. */
export async function hostileTrail(): Promise<{ dir: string; pub: string }> {
  const upstream = await startUpstream();
  const gw = await startTestGateway({
    yaml: [
      'listen: 127.0.0.1:0',
      'admin: { enabled: false }',
      'policy: { path: ./policies, watch: false }',
      'audit: { path: ./audit, durability: relaxed }',
      `agents:\n  - id: bot\n    key_sha256: "${keyHash(KEY)}"`,
      'credentials:\n  tok: { type: bearer, env: SERVE_TOKEN }',
      `routes:\n  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/\n    credential: tok\n  - name: other\n    prefix: /other/\n    upstream: ${upstream.url}/`,
    ].join('\n'),
    env: { SERVE_TOKEN: 'upstream-token-for-serve' },
    policies: {
      'p.rego': `package portcullis\n\ndefault decision := {"allow": false, "reasons": [${JSON.stringify(HOSTILE_REASON)}]}\n\ndecision := {"allow": true, "reasons": ["reads"]} if {\n\tinput.request.method == "GET"\n\tnot contains(input.request.path, "deny")\n}\n`,
    },
  });
  const auth = { authorization: `Bearer ${KEY}` };
  for (let i = 0; i < 6; i++) await rawRequest(gw.gateway.url, { path: `/up/items/${i}`, headers: auth });
  for (let i = 0; i < 4; i++) await rawRequest(gw.gateway.url, { path: `/up/deny/${i}`, headers: auth });
  for (let i = 0; i < 3; i++) await rawRequest(gw.gateway.url, { path: `/other/deny-${i}`, headers: auth });
  await rawRequest(gw.gateway.url, { path: HOSTILE_PATH.replace('<', '%3C').replace('>', '%3E'), headers: auth });
  await rawRequest(gw.gateway.url, { path: '/up/x', headers: { authorization: 'Bearer not-a-key' } });
  await gw.close();
  await upstream.close();
  return { dir: gw.auditDir, pub: `${gw.auditDir}.pub` };
}

/** A copy of the trail with one byte-level change (`from` → `to`) in a deny record past the first few; returns the copy and that record's seq. */
export function tamperedCopy(dir: string, from: string, to: string): { dir: string; seq: number } {
  const copy = mkdtempSync(path.join(os.tmpdir(), 'portcullis-view-tampered-'));
  cpSync(dir, copy, { recursive: true });
  const seg = path.join(
    copy,
    readdirSync(copy)
      .filter((f) => f.endsWith('.jsonl'))
      .sort()[0],
  );
  const lines = readFileSync(seg, 'utf8').replace(/\0+$/, '').split('\n');
  const mid = lines.findIndex((l, i) => i > 3 && l.includes('"decision":"deny"') && l.includes(from));
  const seq = JSON.parse(lines[mid]).seq as number;
  lines[mid] = lines[mid].replace(from, to);
  writeFileSync(seg, lines.join('\n'));
  return { dir: copy, seq };
}

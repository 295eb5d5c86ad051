/**
 * `npm start`: the quickstart. Starts the demo tool API on 127.0.0.1:8091 and Portcullis on
 * 127.0.0.1:8080 with examples/quickstart/portcullis.yaml, and prints what to try.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runUntilSignal } from '../../src/cli/main';
import { loadConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { startDemoUpstream } from './demo-upstream';

const dir = path.resolve(__dirname, '../../../examples/quickstart');

async function main(): Promise<void> {
  const config = loadConfig(path.join(dir, 'portcullis.yaml'));
  const token = readFileSync(path.join(dir, 'secrets/tools-api-token'), 'utf8').trim();
  const upstream = await startDemoUpstream(token, 8091);
  process.stdout.write(`demo tool API on ${upstream.url} (it needs a token the agent never sees)\n`);
  const a = config.admin.address;
  const admin = a.kind === 'tcp' ? `http://${a.host}:${a.port}/metrics` : `${a.path}, /metrics`;
  await runUntilSignal(config, (url) => {
    process.stdout.write(`
Portcullis is running on ${url}  (admin: ${admin})
Try, in another terminal:
  curl -s ${url}/tools/tickets -H 'Authorization: Bearer demo-support-key'            # allowed
  curl -s ${url}/tools/refunds -H 'Authorization: Bearer demo-support-key' \\
       -H 'content-type: application/json' -d '{"amount": 500}'                      # denied: over limit
  curl -s ${url}/tools/reports/q3 -H 'Authorization: Bearer demo-report-key'          # allowed
  curl -s ${url}/tools/tickets                                                        # denied: no agent key
  cat ${path.relative(process.cwd(), config.audit.path)}/*.jsonl | tr -d '\\0' | jq .   # the audit trail (tr: the newest segment's zero tail)
Stop with Ctrl-C.
`);
  });
  await upstream.close();
}

main().catch((err) => {
  process.stderr.write(`portcullis quickstart: ${err instanceof ConfigError ? 'invalid configuration: ' : ''}${(err as Error).message}\n`);
  process.exit(err instanceof ConfigError ? 3 : 5);
});

/**
 * The agent client against the running quickstart (`npm start` in another terminal, then
 * `node dist/examples/agent-client/demo.js`): support-bot lists tickets, opens one, and asks
 * for a refund over its limit, which the policy refuses with reasons and a decision id.
 * PORTCULLIS_URL overrides the gateway address (default http://127.0.0.1:8080).
 */
import { PortcullisClient, PortcullisDenied } from './portcullis-client';

const baseUrl = process.env.PORTCULLIS_URL ?? 'http://127.0.0.1:8080';
// The quickstart's demo key (examples/quickstart/portcullis.yaml); a real agent reads its key
// from a mounted secret or its environment, never from source.
const support = new PortcullisClient({ baseUrl, agentKey: 'demo-support-key' });

function show(label: string, value: unknown): void {
  process.stdout.write(`${label}\n${JSON.stringify(value, null, 2)}\n\n`);
}

async function main(): Promise<void> {
  const list = await support.call('tools', '/tickets');
  show(`GET /tickets → ${list.status} (decision ${list.decisionId})`, list.data);

  const created = await support.call('tools', '/tickets', { method: 'POST', body: { title: 'Refund request from ACME', priority: 'normal' } });
  show(`POST /tickets → ${created.status} (decision ${created.decisionId})`, created.data);

  try {
    await support.call('tools', '/refunds', { method: 'POST', body: { amount: 500, ticket: 1 } });
    process.stdout.write('POST /refunds was allowed: the policy is not the quickstart one\n');
    process.exitCode = 1;
  } catch (err) {
    if (!(err instanceof PortcullisDenied)) throw err;
    show(`POST /refunds {amount: 500} → refused ${err.status} ${err.code}`, { reasons: err.reasons, decision_id: err.decisionId });
    // What an LLM tool wrapper would return to the model as the tool result:
    process.stdout.write(`for the model: ${err.forModel()}\n`);
    process.stdout.write(`the audit record: cat examples/quickstart/audit/*.jsonl | tr -d '\\0' | jq 'select(.decision_id == "${err.decisionId}")'\n`);
  }
}

main().catch((err: Error) => {
  // fetch reports a refused connection as "fetch failed" with the socket error as its cause.
  const cause = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  const hint = cause === 'ECONNREFUSED' ? ` (nothing on ${baseUrl}: start the quickstart with 'npm start' first)` : '';
  process.stderr.write(`agent-client demo: ${err.message}${hint}\n`);
  process.exit(1);
});

/**
 * A worker thread of `policy replay` (replay.ts, runReplayParallel): its own engine on the
 * candidate's compiled module, judging the batches of raw trail lines the main thread sends it.
 * It parses and filters each line as `audit query` does (compileFilter) and answers with the
 * batch's counters and its flips and undeterminable records.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type AuditRecord, compileFilter } from '../../audit/offline/query';
import { WasmPolicyEngine } from '../engine';
import { RecordJudge, type ReplayItem, type WorkerReply, type WorkerSetup, zeroTotals } from './replay';

async function start(): Promise<void> {
  const setup = workerData as WorkerSetup;
  const engine = await WasmPolicyEngine.create(
    { wasm: Buffer.from(setup.wasm), data: setup.data, entrypoints: [], modules: [], revision: setup.revision, files: [], warnings: [] },
    setup.entrypoint,
  );
  const filter = compileFilter(setup.filter);
  const judge = new RecordJudge({ engine, reads: setup.reads, nondeterministic: setup.nondeterministic }, zeroTotals());
  // Batches sent before the engine was ready wait in the port's queue until this listener starts it.
  parentPort!.on('message', ({ seq, lines }: { seq: number; lines: string[] }) => {
    const totals = zeroTotals();
    judge.totals = totals;
    const items: ReplayItem[] = [];
    let unreadable = 0;
    for (const text of lines) {
      let record: AuditRecord | null = null;
      try {
        const v: unknown = JSON.parse(text);
        if (v !== null && typeof v === 'object' && !Array.isArray(v)) record = v as AuditRecord;
      } catch {
        /* counted below */
      }
      if (record === null) {
        unreadable++;
        continue;
      }
      if (!filter.matches(record)) continue;
      const item = judge.judge(record);
      if (item) items.push(item);
    }
    const reply: WorkerReply = { seq, totals, items, unreadable };
    parentPort!.postMessage(reply);
  });
}

void start();

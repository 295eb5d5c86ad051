/**
 * Opens a trail (trail-view.ts: verification and the summary pass) in a worker thread, so the
 * view's server answers while a large trail is verified: every page shows the progress until
 * the verdict is known. Runs as compiled JavaScript (dist/), also when the server itself runs
 * under ts-jest.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type OpenProgress, openTrailView, type TrailView } from './trail-view';

/** Messages from the worker. */
type FromWorker = { readonly progress: OpenProgress } | { readonly view: TrailView } | { readonly error: string };

if (!isMainThread && parentPort && (workerData as { portcullisTrailView?: boolean } | null)?.portcullisTrailView) {
  const { dir, keys, live } = workerData as { dir: string; keys: string[]; live: boolean };
  const port = parentPort;
  try {
    const view = openTrailView(dir, keys, (progress) => port.postMessage({ progress } satisfies FromWorker), live);
    port.postMessage({ view } satisfies FromWorker);
  } catch (err) {
    port.postMessage({ error: (err as Error).message } satisfies FromWorker);
  }
}

/** The compiled form of this file: beside it when running from dist/, else under dist/ at the root. */
function workerFile(): string {
  if (__filename.endsWith('.js')) return __filename;
  const built = path.resolve(__dirname, '../../../dist/src/audit/viewer/open-worker.js');
  if (!existsSync(built)) throw new Error(`${built} is missing: build first (npm run build)`);
  return built;
}

/** Opens the trail in a worker; `onProgress` hears where it is. */
export function openInWorker(dir: string, keys: readonly string[], onProgress: (p: OpenProgress) => void, live = false): Promise<TrailView> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerFile(), { workerData: { portcullisTrailView: true, dir, keys: [...keys], live } });
    let settled = false;
    worker.on('message', (m: FromWorker) => {
      if ('progress' in m) onProgress(m.progress);
      else {
        settled = true;
        void worker.terminate();
        if ('view' in m) resolve(m.view);
        else reject(new Error(m.error));
      }
    });
    worker.once('error', (err) => {
      if (!settled) reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`the trail could not be opened (worker exited with ${code})`));
    });
  });
}

/**
 * `npm run bench:audit-view`: the auditor's view (`audit serve`) on a large trail. Generates
 * BENCH_RECORDS (1,000,000) records with bench/audit-query.ts's generator, then times how long
 * the view takes to be ready (verification and the summary pass, in a worker), the first
 * timeline page after that, the summaries, a filtered page and a deep page, and samples the
 * process's RSS throughout (the worker's memory is in it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { serveTrail } from '../src/audit/viewer/server';
import { generate } from './audit-query';

function get(url: string): Promise<{ status: number; ms: number; bytes: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, bytes }));
      })
      .on('error', reject);
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-view-'));
  let peakRss = 0;
  const sample = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
  try {
    const g0 = performance.now();
    const { records } = generate(dir);
    console.log(`trail: ${records} records, generated in ${((performance.now() - g0) / 1000).toFixed(1)} s`);
    const rssBefore = process.memoryUsage().rss;
    peakRss = rssBefore;
    const t0 = performance.now();
    const server = await serveTrail({ trail: dir, keys: [], host: '127.0.0.1', port: 0, token: null });
    const during = await get(`${server.url}/timeline`);
    const view = await server.ready;
    const readyS = (performance.now() - t0) / 1000;
    console.log(`while opening: /timeline answered ${during.status} in ${during.ms.toFixed(0)} ms (the progress page)`);
    console.log(`ready (verdict ${view.report.verdict}, ${view.report.records} records) after ${readyS.toFixed(1)} s`);
    console.log(`${'page'.padEnd(40)} ${'status'.padStart(6)} ${'ms'.padStart(8)} ${'KB'.padStart(8)}`);
    for (const p of ['/timeline', '/timeline', '/denies', '/credentials', '/policies', '/timeline?agent=agent-07&decision=deny', '/timeline?offset=100000']) {
      const r = await get(`${server.url}${p}`);
      console.log(`${p.padEnd(40)} ${String(r.status).padStart(6)} ${r.ms.toFixed(0).padStart(8)} ${(r.bytes / 1024).toFixed(0).padStart(8)}`);
    }
    console.log(
      `RSS: ${(rssBefore / 1e6).toFixed(0)} MB before opening, peak ${(peakRss / 1e6).toFixed(0)} MB, now ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`,
    );
    await server.close();
  } finally {
    clearInterval(sample);
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();

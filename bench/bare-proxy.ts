/**
 * The "bare keep-alive proxy" baseline: http-proxy 1.18.1 on a plain node:http server with a
 * keep-alive agent, doing nothing but pass-through (no identification, policy, audit or
 * credential). The upstream URL comes from BENCH_UPSTREAM_URL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import httpProxy from 'http-proxy';
import { serveChild } from './child';

if (require.main === module) {
  const target = process.env.BENCH_UPSTREAM_URL;
  if (!target) throw new Error('BENCH_UPSTREAM_URL is not set');
  // Without an agent http-proxy opens a connection per request (~3k req/s): see REFERENCE.md.
  const agent = new http.Agent({ keepAlive: true });
  const proxy = httpProxy.createProxyServer({ target, agent });
  // http-proxy crashes the process on an upstream error unless someone listens.
  proxy.on('error', (_err, _req, res) => {
    if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  const server = http.createServer((req, res) => proxy.web(req, res));
  server.listen(0, '127.0.0.1', () => {
    serveChild(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, async () => {
      server.closeAllConnections();
      server.close();
      agent.destroy();
    });
  });
}

/**
 * The quickstart's demo "tool API": a small upstream that only answers callers presenting its
 * API token, which Portcullis attaches on allowed calls. It has tickets, refunds, reports, an
 * SSE stream, and a careless debug endpoint that echoes request headers (to show masking).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running demo upstream. */
export interface DemoUpstream {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the demo tool API; it requires `Authorization: Bearer <token>`. */
export function startDemoUpstream(token: string, port = 0, host = '127.0.0.1'): Promise<DemoUpstream> {
  const tickets = [{ id: 1, title: 'Printer on fire', priority: 'high' }];
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.headers.authorization !== `Bearer ${token}`) return send(401, { error: 'missing or wrong API token' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://demo');
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      if (req.method === 'GET' && url.pathname === '/tickets') return send(200, tickets);
      if (req.method === 'POST' && url.pathname === '/tickets') {
        const t = { id: tickets.length + 1, ...body };
        tickets.push(t);
        return send(201, t);
      }
      if (req.method === 'POST' && url.pathname === '/refunds') return send(201, { refunded: body?.amount, status: 'ok' });
      if (req.method === 'GET' && url.pathname.startsWith('/reports/')) return send(200, { report: url.pathname.slice(9), rows: 42 });
      if (req.method === 'GET' && url.pathname === '/debug/headers') return send(200, req.headers);
      // A careless debug endpoint that "hides" the token by encoding it, and redirects with it.
      if (req.method === 'GET' && url.pathname === '/debug/encoded') {
        const auth = String(req.headers.authorization ?? '');
        res.setHeader('location', `/callback?token=${encodeURIComponent(auth)}`);
        return send(200, { base64: Buffer.from(auth).toString('base64'), hex: Buffer.from(auth).toString('hex') });
      }
      if (req.method === 'GET' && url.pathname === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let n = 0;
        const timer = setInterval(() => {
          res.write(`id: ${++n}\ndata: {"tick":${n}}\n\n`);
          if (n === 5) {
            clearInterval(timer);
            res.end();
          }
        }, 200);
        res.on('close', () => clearInterval(timer));
        return;
      }
      send(404, { error: 'no such tool' });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      resolve({
        url: `http://${host}:${a.port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/**
 * The benchmark's upstream (and its "direct" target): a minimal node:http server that reads
 * the whole request body and answers a small JSON body. It reports in a response header
 * whether the request carried the gateway's credential, so the orchestrator can check that
 * Portcullis really injected it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveChild } from './child';

/** Response header: "1" when the request carried `Bearer $BENCH_UPSTREAM_TOKEN`. */
export const SAW_CREDENTIAL_HEADER = 'x-bench-saw-credential';

const BODY = Buffer.from('{"ok":true}');
const expected = `Bearer ${process.env.BENCH_UPSTREAM_TOKEN ?? ''}`;

if (require.main === module) {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': BODY.length,
        [SAW_CREDENTIAL_HEADER]: req.headers.authorization === expected ? '1' : '0',
      });
      res.end(BODY);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    serveChild(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, async () => {
      server.closeAllConnections();
      server.close();
    });
  });
}

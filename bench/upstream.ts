/**
 * The benchmark's upstream (and its "direct" target): a minimal node:http server that reads
 * the whole request body and answers a small JSON body, and on the MCP endpoints an MCP server
 * (bench/mcp-server.ts). It reports in a response header whether the request carried the
 * gateway's credential, so the orchestrator can check that Portcullis really injected it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveChild } from './child';
import { createMcpEcho, isMcpEndpoint, type McpStatsReply, type McpStatsRequest } from './mcp-server';

/** Response header: "1" when the request carried `Bearer $BENCH_UPSTREAM_TOKEN`. */
export const SAW_CREDENTIAL_HEADER = 'x-bench-saw-credential';

const BODY = Buffer.from('{"ok":true}');
/** Path of the 1 MiB streamed answer (bench/masking.ts): 16 chunks of 64 KiB, no Content-Length. */
export const STREAM_PATH = '/api/items/stream-1mb';
const STREAM_CHUNK = Buffer.from(
  JSON.stringify({ items: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'] })) })
    .padEnd(65536, ' ')
    .slice(0, 65536),
);
const expected = `Bearer ${process.env.BENCH_UPSTREAM_TOKEN ?? ''}`;

if (require.main === module) {
  const mcp = createMcpEcho();
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const sawCredential = req.headers.authorization === expected ? '1' : '0';
    if (isMcpEndpoint(req.url)) {
      // The SDK writes the head itself; Node merges this header into it.
      res.setHeader(SAW_CREDENTIAL_HEADER, sawCredential);
      return mcp.handle(req, res);
    }
    req.on('data', () => undefined);
    req.on('end', () => {
      if (req.url === STREAM_PATH) {
        res.writeHead(200, { 'content-type': 'application/json', [SAW_CREDENTIAL_HEADER]: sawCredential });
        for (let i = 0; i < 15; i++) res.write(STREAM_CHUNK);
        return void res.end(STREAM_CHUNK);
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length, [SAW_CREDENTIAL_HEADER]: sawCredential });
      res.end(BODY);
    });
  });
  process.on('message', (m: McpStatsRequest) => {
    if (m?.type === 'mcp-stats') process.send?.({ type: 'mcp-stats', toolCalls: mcp.toolCalls } satisfies McpStatsReply);
  });
  server.listen(0, '127.0.0.1', () => {
    serveChild(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, async () => {
      await mcp.close();
      server.closeAllConnections();
      server.close();
    });
  });
}

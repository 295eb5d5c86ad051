/**
 * The benchmark's upstream (and its "direct" target): a minimal node:http server that reads
 * the whole request body and answers a small JSON body, and on the MCP endpoints an MCP server
 * (bench/mcp-server.ts). It reports in a response header whether the request carried the
 * gateway's credential, so the orchestrator can check that Portcullis really injected it.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveChild } from './child';
import { createMcpEcho, isMcpEndpoint, type McpStatsReply, type McpStatsRequest } from './mcp-server';

/** Response header: "1" when the request carried `Bearer $BENCH_UPSTREAM_TOKEN`. */
export const SAW_CREDENTIAL_HEADER = 'x-bench-saw-credential';
/**
 * Request header of the pre-flight checks: a REST request carrying it is answered with what the
 * upstream received (AuthorizationSeen) instead of `{"ok":true}`, so the orchestrator can check
 * the credential of a route whose value it does not know in advance (a minted token, a
 * signature). Values are reported as SHA-256 digests: the gateway masks its credentials in
 * answers, and would mask them here.
 */
export const INSPECT_HEADER = 'x-bench-inspect';

/** What the upstream saw of a request sent with INSPECT_HEADER. */
export interface AuthorizationSeen {
  /** The Authorization header's scheme (`Bearer`, `AWS4-HMAC-SHA256`), or null without one. */
  readonly scheme: string | null;
  /** SHA-256 hex of the whole Authorization header value. */
  readonly authorizationSha256: string | null;
  /** SigV4: the key id of `Credential=<key id>/<scope>`, as a SHA-256 hex digest, and the scope. */
  readonly sigv4: { readonly keyIdSha256: string; readonly scope: string; readonly signedHeaders: string[]; readonly signatureHex: boolean } | null;
  readonly amzDate: string | null;
  readonly amzContentSha256: string | null;
  /** SHA-256 hex of the body received. */
  readonly bodySha256: string;
}

export const sha256Hex = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

function authorizationSeen(req: http.IncomingMessage, body: Buffer): AuthorizationSeen {
  const auth = req.headers.authorization ?? null;
  const m = auth ? /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)$/.exec(auth) : null;
  const one = (v: string | string[] | undefined) => (typeof v === 'string' ? v : null);
  return {
    scheme: auth ? auth.split(' ')[0] : null,
    authorizationSha256: auth ? sha256Hex(auth) : null,
    sigv4: m ? { keyIdSha256: sha256Hex(m[1]), scope: m[2], signedHeaders: m[3].split(';'), signatureHex: /^[0-9a-f]{64}$/.test(m[4]) } : null,
    amzDate: one(req.headers['x-amz-date']),
    amzContentSha256: one(req.headers['x-amz-content-sha256']),
    bodySha256: sha256Hex(body),
  };
}

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
    if (req.headers[INSPECT_HEADER] !== undefined) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const seen = Buffer.from(JSON.stringify(authorizationSeen(req, Buffer.concat(chunks))));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': seen.length, [SAW_CREDENTIAL_HEADER]: sawCredential }).end(seen);
      });
      return;
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

/**
 * The benchmark's MCP server, served by the upstream process (bench/upstream.ts) at MCP_PATH:
 * the MCP SDK's low-level `Server` with one tool, `echo`, behind the SDK's Streamable HTTP
 * transport in stateful mode (a session per `initialize`), answering each call as an SSE
 * stream, the SDK's default and what server-everything does.
 *
 * The low-level Server rather than McpServer: no schema validation of the arguments, so the
 * server is as cheap as an SDK server gets and the benchmark measures the gateway, not the
 * server. The server counts the tool calls it executed, so the orchestrator can check that
 * every call answered 200 really reached it (a denied tools/call is answered 200 too).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

/** The MCP endpoint, the same path on every target (the gateway's route prefix too). */
export const MCP_PATH = '/mcp/';

/** True when `path` is the MCP endpoint. */
export function isMcpEndpoint(path: string | undefined): boolean {
  return path === MCP_PATH;
}

/** Asks the upstream how many tool calls its MCP server executed. */
export interface McpStatsRequest {
  readonly type: 'mcp-stats';
}

/** The upstream's answer to McpStatsRequest. */
export interface McpStatsReply {
  readonly type: 'mcp-stats';
  readonly toolCalls: number;
}

/** The MCP side of the upstream. */
export interface McpEcho {
  /** Handles a request to the MCP endpoint. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Tool calls executed so far. */
  readonly toolCalls: number;
  close(): Promise<void>;
}

function echoServer(onCall: () => void): Server {
  const server = new Server({ name: 'portcullis-bench-echo', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: [
      {
        name: 'echo',
        description: 'Returns its message.',
        inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
      },
    ],
  }));
  server.setRequestHandler(CallToolRequestSchema, (request) => {
    if (request.params.name !== 'echo') return { content: [{ type: 'text', text: `unknown tool ${request.params.name}` }], isError: true };
    onCall();
    return { content: [{ type: 'text', text: String(request.params.arguments?.message ?? '') }] };
  });
  return server;
}

/** Creates the MCP server; a session's transport and server live until close(). */
export function createMcpEcho(): McpEcho {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  let toolCalls = 0;
  const count = () => void toolCalls++;

  return {
    handle(req, res) {
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (typeof sid === 'string' && !transport) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}');
        return;
      }
      if (!transport) {
        // No session: the SDK answers 400 unless this is an initialize, which creates one. A
        // transport serves one session, so each gets its own.
        // A session ended by DELETE is forgotten, so a soak that opens and closes sessions
        // (bench/soak.ts) does not grow the upstream that shares the gateway's core.
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: randomUUID,
          onsessioninitialized: (id) => void sessions.set(id, transport!),
          onsessionclosed: (id) => void sessions.delete(id),
        });
        void echoServer(count).connect(transport);
      }
      void transport.handleRequest(req, res);
    },
    get toolCalls() {
      return toolCalls;
    },
    async close() {
      await Promise.all([...sessions.values()].map((t) => t.close()));
    },
  };
}

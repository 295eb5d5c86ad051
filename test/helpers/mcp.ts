/**
 * MCP peers for tests: the reference server `@modelcontextprotocol/server-everything` run as a
 * child process on a free port, a one-tool SDK server in this process, and SDK clients that talk
 * to the gateway with an agent key.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

/** The server-everything entry point (an ESM script run by node). */
export const EVERYTHING = path.join(__dirname, '../../node_modules/@modelcontextprotocol/server-everything/dist/index.js');

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A running server-everything. */
export interface EverythingServer {
  /** Its MCP endpoint, e.g. http://127.0.0.1:PORT/mcp */
  readonly url: string;
  readonly proc: ChildProcess;
  /** Everything it printed. */
  output(): string;
  close(): Promise<void>;
}

/** Starts server-everything in streamableHttp mode; `env` is added to its environment. */
export async function startEverything(env: NodeJS.ProcessEnv = {}): Promise<EverythingServer> {
  const port = await freePort();
  const proc = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server-everything did not start:\n${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes(`listening on port ${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited (${code}):\n${out}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    proc,
    output: () => out,
    close: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** Options for mcpClient. */
export interface McpClientOptions {
  /** The agent key sent as `Authorization: Bearer`. */
  readonly agentKey?: string;
  /** Declares sampling support (and answers sampling requests with this text). */
  readonly samplingReply?: string;
}

/** A connected SDK client and its transport. */
export interface ConnectedClient {
  readonly client: Client;
  readonly transport: StreamableHTTPClientTransport;
  close(): Promise<void>;
}

/** Connects an SDK Client over Streamable HTTP to `url`. */
export async function mcpClient(url: string, opts: McpClientOptions = {}): Promise<ConnectedClient> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: opts.agentKey ? { headers: { authorization: `Bearer ${opts.agentKey}` } } : undefined,
  });
  const client = new Client({ name: 'portcullis-test', version: '1.0.0' }, { capabilities: opts.samplingReply !== undefined ? { sampling: {} } : {} });
  await client.connect(transport);
  return {
    client,
    transport,
    async close() {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    },
  };
}

/** A running one-tool MCP server (startTicketsServer). */
export interface TicketsServer {
  /** Its MCP endpoint, http://127.0.0.1:PORT/mcp */
  readonly url: string;
  /** The Authorization header of every request it received, in order. */
  readonly authorizations: (string | undefined)[];
  /** How many times its tool ran. */
  readonly toolRuns: () => number;
  close(): Promise<void>;
}

/** A stateless SDK MCP server on 127.0.0.1:0 with one tool, `lookup`, answering "ticket 42: open". */
export async function startTicketsServer(): Promise<TicketsServer> {
  const authorizations: (string | undefined)[] = [];
  let runs = 0;
  const server = http.createServer((req, res) => {
    authorizations.push(req.headers.authorization);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const text = Buffer.concat(chunks).toString();
      const mcp = new McpServer({ name: 'tickets', version: '1.0.0' });
      mcp.registerTool('lookup', { description: 'Looks a ticket up' }, async () => {
        runs++;
        return { content: [{ type: 'text', text: 'ticket 42: open' }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await mcp.connect(transport);
      await transport.handleRequest(req, res, text ? JSON.parse(text) : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/mcp`,
    authorizations,
    toolRuns: () => runs,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

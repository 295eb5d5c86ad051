/**
 * The list filter against a real MCP server: the SDK's McpServer behind a
 * StreamableHTTPServerTransport on a real socket, answering in JSON and in SSE. A raw fetch of
 * tools/list is piped through the filter and the SDK's own schemas must still accept the result;
 * then a real SDK Client, whose fetch pipes tools/list answers through the filter, lists tools.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { JSONRPCMessageSchema, ListToolsResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { createListFilter, type ListFilterSpec } from '../../src/mcp/list-filter';

const TOOLS = ['echo', 'get-env', 'get-sum', 'delete-everything'];
const HIDDEN = new Set(['get-env', 'delete-everything']);
const visible = (item: Readonly<Record<string, unknown>>) => !HIDDEN.has(item.name as string);

/** A stateless SDK server per request, as the SDK's own examples run it. */
async function startUpstream(enableJsonResponse: boolean): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const mcp = new McpServer({ name: 'upstream', version: '1.0.0' });
    for (const name of TOOLS) {
      mcp.registerTool(name, { description: `the ${name} tool`, annotations: { readOnlyHint: name !== 'delete-everything' } }, async () => ({
        content: [{ type: 'text', text: name }],
      }));
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    mcp
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch((err) => res.destroy(err));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function filtered(res: Response, spec: ListFilterSpec): Promise<string> {
  const filter = createListFilter(res.headers.get('content-type') ?? undefined, spec);
  if (!filter) throw new Error(`unfilterable content type ${res.headers.get('content-type')}`);
  const chunks: Buffer[] = [];
  for await (const chunk of Readable.fromWeb(res.body as WebReadableStream<Uint8Array>).pipe(filter)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The JSON-RPC messages in a body. The SDK server ends SSE lines with LF and sends one data line
 * per event; the SDK Client test below reads SSE with the client's own parser.
 */
function messages(contentType: string, body: string): unknown[] {
  if (contentType.startsWith('application/json')) return [JSON.parse(body)];
  return body
    .split('\n\n')
    .map((event) =>
      event
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.replace(/^data: ?/, '')),
    )
    .filter((data) => data.length > 0)
    .map((data) => JSON.parse(data.join('\n')));
}

describe.each([
  ['JSON', true],
  ['SSE', false],
])('tools/list from a real SDK server answering in %s', (_kind, enableJsonResponse) => {
  let upstream: { url: string; close: () => Promise<void> };
  beforeAll(async () => {
    upstream = await startUpstream(enableJsonResponse);
  });
  afterAll(() => upstream.close());

  test('a raw fetch piped through the filter still parses with the SDK schemas, without the hidden tools', async () => {
    const res = await fetch(upstream.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }),
    });
    expect(res.status).toBe(200);
    const contentType = res.headers.get('content-type') as string;
    expect(contentType).toMatch(enableJsonResponse ? /^application\/json/ : /^text\/event-stream/);
    const removed: Array<[number, number]> = [];
    const body = await filtered(res, { method: 'tools/list', requestId: 7, visible, onFiltered: (r, k) => removed.push([r, k]) });
    expect(body).not.toContain('get-env');
    expect(body).not.toContain('delete-everything');
    const [message] = messages(contentType, body);
    const response = JSONRPCMessageSchema.parse(message) as { id: unknown; result: unknown };
    expect(response.id).toBe(7);
    const result = ListToolsResultSchema.parse(response.result);
    expect(result.tools.map((t) => t.name)).toEqual(['echo', 'get-sum']);
    expect(result.tools[0]).toMatchObject({ description: 'the echo tool', annotations: { readOnlyHint: true }, inputSchema: { type: 'object' } });
    expect(removed).toEqual([[2, 2]]);
  });

  test('the same answer unfiltered lists every tool (the server really offers them)', async () => {
    const res = await fetch(upstream.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/list', params: {} }),
    });
    const [message] = messages(res.headers.get('content-type') as string, await res.text());
    const result = ListToolsResultSchema.parse((JSONRPCMessageSchema.parse(message) as { result: unknown }).result);
    expect(result.tools.map((t) => t.name)).toEqual(TOOLS);
  });

  test('an SDK Client whose fetch filters tools/list answers sees only the visible tools, and can still call them', async () => {
    // What the gateway will do, in miniature: find the list request's id in the body it forwards,
    // and pipe the answer through the filter.
    const filteringFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const res = await fetch(input, init);
      const sent = typeof init?.body === 'string' ? JSON.parse(init.body) : null;
      if (sent?.method !== 'tools/list' || !res.body) return res;
      const filter = createListFilter(res.headers.get('content-type') ?? undefined, { method: 'tools/list', requestId: sent.id, visible });
      if (!filter) throw new Error('unfilterable answer');
      const body = Readable.toWeb(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>).pipe(filter)) as ReadableStream<Uint8Array>;
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const client = new Client({ name: 'agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(upstream.url), { fetch: filteringFetch }));
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['echo', 'get-sum']);
      const called = await client.callTool({ name: 'echo', arguments: {} });
      expect(called.content).toEqual([{ type: 'text', text: 'echo' }]);
    } finally {
      await client.close();
    }
  });
});

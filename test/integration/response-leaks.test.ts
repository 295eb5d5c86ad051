/**
 * G2 against a careless upstream: every way an upstream commonly echoes the credential it was
 * sent must reach the agent masked. The upstream here echoes what it really received (the
 * credential the gateway attached), compressed, in a header name, one character per SSE event,
 * and in each common encoding; the agent's view is decoded again and searched for the secret.
 * Also: an answer the gateway cannot read is refused (502, audited, nothing of it sent), and a
 * compression bomb is cut off.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

/** A bearer token with the characters escapers treat specially. */
const TOKEN = 'tk"q\\+/=Ab9_canary-7Zp<x>&y';
/** A header credential that can also be a header name. */
const HDR_TOKEN = 'hdrcanary9f2b7c1d3e';
const BASIC_USER = 'svc';
const BASIC_PASSWORD = 'p@ss w+rd/"9=canary';
const AGENT_KEY = 'agent-key-response-leaks-01';

const POLICY = `package portcullis
default decision := {"allow": false, "reasons": ["no"]}
decision := {"allow": true, "reasons": ["ok"]} if input.agent.id == "bot"
`;

let upstream: Upstream;
let rawUpstream: net.Server;
let rawUrl: string;
let mcpUpstream: http.Server;
let mcpUrl: string;
let gw: TestGateway;

const auth = { authorization: `Bearer ${AGENT_KEY}` };

/** The secret the upstream received on this request (token, header value or basic password). */
function secretOf(req: http.IncomingMessage): string {
  if (typeof req.headers['x-api-key'] === 'string') return req.headers['x-api-key'];
  const a = String(req.headers.authorization);
  if (a.startsWith('Basic ')) return Buffer.from(a.slice(6), 'base64').toString().split(':').slice(1).join(':');
  return a.slice('Bearer '.length);
}

/** The encodings a careless upstream applies, written here independently of the gateway's list. */
const ENCODE: Record<string, (s: string) => string> = {
  base64: (s) => Buffer.from(s).toString('base64'),
  'base64-offset1': (s) => Buffer.from(`x${s}!`).toString('base64'),
  'base64-offset2': (s) => Buffer.from(`xy${s}!?`).toString('base64'),
  base64url: (s) => Buffer.from(`z${s}`).toString('base64url'),
  hex: (s) => Buffer.from(s).toString('hex'),
  HEX: (s) => Buffer.from(s).toString('hex').toUpperCase(),
  uri: (s) => encodeURIComponent(s),
  uriLower: (s) => encodeURIComponent(s).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
  form: (s) => new URLSearchParams({ k: s }).toString().slice(2),
  json: (s) => JSON.stringify(s).slice(1, -1),
  jsonGo: (s) =>
    JSON.stringify(s)
      .slice(1, -1)
      .replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`),
  jsonSlash: (s) => JSON.stringify(s).slice(1, -1).replace(/\//g, '\\/'),
  unicode: (s) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''),
  UNICODE: (s) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`).join(''),
};

/** Undoes each encoding on what the agent got, to look for the secret in the decoded view. */
const DECODE: Record<string, (t: string) => string> = {
  base64: (t) => Buffer.from(t, 'base64').toString('latin1'),
  'base64-offset1': (t) => Buffer.from(t, 'base64').toString('latin1'),
  'base64-offset2': (t) => Buffer.from(t, 'base64').toString('latin1'),
  base64url: (t) => Buffer.from(t, 'base64url').toString('latin1'),
  hex: (t) => Buffer.from(t, 'hex').toString('latin1'),
  HEX: (t) => Buffer.from(t, 'hex').toString('latin1'),
  uri: (t) => safe(() => decodeURIComponent(t)),
  uriLower: (t) => safe(() => decodeURIComponent(t)),
  form: (t) => new URLSearchParams(`k=${t}`).get('k') ?? '',
  json: (t) => safe(() => JSON.parse(`"${t}"`)),
  jsonGo: (t) => safe(() => JSON.parse(`"${t}"`)),
  jsonSlash: (t) => safe(() => JSON.parse(`"${t}"`)),
  unicode: (t) => safe(() => JSON.parse(`"${t}"`)),
  UNICODE: (t) => safe(() => JSON.parse(`"${t}"`)),
};

function safe(f: () => string): string {
  try {
    return f();
  } catch {
    return '';
  }
}

function yaml(): string {
  return `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  api: { type: bearer, env: LEAK_TOKEN }
  hdr: { type: header, header: X-Api-Key, env: LEAK_HDR }
  legacy: { type: basic, username: ${BASIC_USER}, password_env: LEAK_BASIC }
agents:
  - id: bot
    key_sha256: "${keyHash(AGENT_KEY)}"
routes:
  - { name: api, prefix: /api/, upstream: "${upstream.url}/", credential: api }
  - { name: hdr, prefix: /hdr/, upstream: "${upstream.url}/", credential: hdr }
  - { name: basic, prefix: /basic/, upstream: "${upstream.url}/", credential: legacy }
  - { name: raw, prefix: /raw/, upstream: "${rawUrl}/", credential: api }
  - { name: open, prefix: /open/, upstream: "${upstream.url}/" }
  - { name: tools, kind: mcp, prefix: /mcp/, upstream: "${mcpUrl}/mcp", credential: api }
`;
}

/** A careless upstream: what it echoes, and how, is chosen by the path. */
function careless(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const secret = secretOf(req);
  const echo = JSON.stringify({ seen: String(req.headers.authorization ?? req.headers['x-api-key']) });
  const [, what, arg] = url.pathname.split('/');
  switch (what) {
    case 'compressed': {
      const body =
        arg === 'gzip'
          ? zlib.gzipSync(echo)
          : arg === 'deflate'
            ? zlib.deflateSync(echo)
            : arg === 'deflate-raw'
              ? zlib.deflateRawSync(echo)
              : arg === 'br'
                ? zlib.brotliCompressSync(echo)
                : zlib.zstdCompressSync(echo);
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': arg === 'deflate-raw' ? 'deflate' : arg, 'content-length': body.length });
      return void res.end(body);
    }
    case 'compressed-stream': {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      const gz = zlib.createGzip();
      gz.pipe(res);
      gz.write(`data: ${secret.slice(0, 5)}\n\n`);
      gz.flush(() => setTimeout(() => gz.end(`data: ${secret.slice(5)}\n\n`), 10));
      return;
    }
    case 'bomb': {
      const body = zlib.gzipSync(Buffer.alloc(40 * 1024 * 1024, 0x41));
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': body.length });
      return void res.end(body);
    }
    case 'unknown-encoding':
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': arg });
      return void res.end(echo);
    case 'header-name':
      res.setHeader(`x-t-${arg === 'upper' ? secret.toUpperCase() : secret}`, '1');
      res.setHeader('x-kept', 'yes');
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end('ok');
    case 'location':
      res.writeHead(302, { location: `https://elsewhere.example/cb?key=${ENCODE[arg](secret)}`, 'content-length': 0 });
      return void res.end();
    case 'encoded': {
      const text = `{"v":"${ENCODE[arg](secret)}"}`;
      const chunked = url.searchParams.has('chunked');
      res.writeHead(200, { 'content-type': 'application/json', ...(chunked ? {} : { 'content-length': Buffer.byteLength(text) }) });
      if (!chunked) return void res.end(text);
      // One byte per write: the masker must hold what may begin the secret across chunks.
      let i = 0;
      const next = (): void => {
        if (i < text.length) res.write(text[i++], () => setImmediate(next));
        else res.end();
      };
      return next();
    }
    case 'sse-split': {
      // One character per event, or per data line, with a pause between writes.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const eol = arg === 'crlf' ? '\r\n' : '\n';
      const pieces = [...secret].map((c, i) => (arg === 'lines' ? `data: ${c}${eol}${i === secret.length - 1 ? eol : ''}` : `data:${c}${eol}${eol}`));
      const next = (): void => {
        const p = pieces.shift();
        if (p === undefined) return void res.end();
        res.write(p, () => setTimeout(next, 1));
      };
      return next();
    }
    default:
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(echo);
  }
}

/** A raw upstream for framings Node's server will not write. */
function startRawUpstream(): Promise<void> {
  rawUpstream = net.createServer((sock) => {
    let head = '';
    sock.on('data', (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const token = /authorization: Bearer (.*)\r\n/i.exec(head)?.[1] ?? '';
      const gz = zlib.gzipSync(`token=${token}`);
      // Transfer-Encoding gzip, chunked: undici undoes only the chunking.
      sock.end(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: gzip, chunked\r\n\r\n${gz.length.toString(16)}\r\n`),
          gz,
          Buffer.from('\r\n0\r\n\r\n'),
        ]),
      );
    });
  });
  return new Promise((r) =>
    rawUpstream.listen(0, '127.0.0.1', () => {
      rawUrl = `http://127.0.0.1:${(rawUpstream.address() as AddressInfo).port}`;
      r();
    }),
  );
}

/** An MCP server whose tool echoes the credential it received, in the encoding asked for. */
function startMcpUpstream(): Promise<void> {
  mcpUpstream = http.createServer((req, res) => {
    const mcp = new McpServer({ name: 'careless', version: '1.0.0' });
    mcp.registerTool('whoami', { inputSchema: {} }, async (_args, extra) => {
      const token = String(extra.requestInfo?.headers.authorization ?? '').slice('Bearer '.length);
      return {
        content: Object.keys(ENCODE)
          .map((form) => ({ type: 'text' as const, text: `${form}:${ENCODE[form](token)}` }))
          .concat([{ type: 'text', text: `raw:${token}` }]),
      };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: req.headers['x-json'] === '1' });
    res.on('close', () => void transport.close());
    void mcp.connect(transport).then(() => transport.handleRequest(req, res));
  });
  return new Promise((r) =>
    mcpUpstream.listen(0, '127.0.0.1', () => {
      mcpUrl = `http://127.0.0.1:${(mcpUpstream.address() as AddressInfo).port}`;
      r();
    }),
  );
}

beforeAll(async () => {
  upstream = await startUpstream((req, res) => careless(req, res));
  await startRawUpstream();
  await startMcpUpstream();
  gw = await startTestGateway({
    yaml: yaml(),
    policies: { 'policy.rego': POLICY },
    env: { LEAK_TOKEN: TOKEN, LEAK_HDR: HDR_TOKEN, LEAK_BASIC: BASIC_PASSWORD },
  });
}, 60_000);

afterAll(async () => {
  await gw.close();
  await upstream.close();
  await new Promise((r) => rawUpstream.close(r));
  await new Promise((r) => {
    mcpUpstream.close(r);
    mcpUpstream.closeAllConnections();
  });
});

/** Everything the agent saw of an answer, as one string. */
function seen(r: { headers: http.IncomingHttpHeaders; body: string }): string {
  return `${JSON.stringify(r.headers)}\n${r.body}`;
}

function expectNoSecret(text: string, secret: string): void {
  expect(text).not.toContain(secret);
  for (const form of Object.keys(ENCODE)) expect(text).not.toContain(ENCODE[form](secret));
}

describe('G2: compressed answers are decoded, then masked', () => {
  test.each(['gzip', 'deflate', 'deflate-raw', 'br', 'zstd'])('%s', async (coding) => {
    const r = await rawRequest(gw.gateway.url, { path: `/api/compressed/${coding}`, headers: auth });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBeUndefined();
    // The token travels JSON-escaped: what is masked is the escaped form (the scheme with it).
    expect(JSON.parse(r.body).seen).toMatch(/^(Bearer )?\*{27,}$/);
    expectNoSecret(seen(r), TOKEN);
  });

  test('a gzip event stream, the secret split over two events', async () => {
    const r = await rawRequest(gw.gateway.url, { path: '/api/compressed-stream', headers: auth });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.body).toContain('data: ');
    expectNoSecret(r.body.replace(/data: |\n/g, ''), TOKEN);
  });

  test('an answer in a coding the gateway cannot read is refused with 502 and audited, none of it sent', async () => {
    for (const coding of ['compress', 'gzip, br', 'x-custom']) {
      const r = await rawRequest(gw.gateway.url, { path: `/api/unknown-encoding/${encodeURIComponent(coding)}`, headers: auth });
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body).error.code).toBe('PC_UPSTREAM_BAD_ENCODING');
      expectNoSecret(seen(r), TOKEN);
      const id = r.headers['x-portcullis-decision-id'];
      await gw.waitForAudit((x) => x.type === 'outcome' && x.decision_id === id && x.status === 502 && x.code === 'PC_UPSTREAM_BAD_ENCODING');
    }
  });

  test('Transfer-Encoding: gzip, chunked (undici undoes only the chunking) is refused with 502', async () => {
    const r = await rawRequest(gw.gateway.url, { path: '/raw/te', headers: auth });
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).error.code).toBe('PC_UPSTREAM_BAD_ENCODING');
    expect(r.body).not.toContain(TOKEN);
  });

  test('a compression bomb is cut off past the ratio limit, with its own outcome code', async () => {
    const r = await rawRequest(gw.gateway.url, { path: '/api/bomb', headers: auth }).catch((e: Error) => ({ status: -1, headers: {}, body: e.message }));
    // Headers were sent before the limit was hit: the stream is cut, never completed.
    if (r.status === 200) expect(r.body.length).toBeLessThan(40 * 1024 * 1024);
    await gw.waitForAudit((x) => x.type === 'outcome' && x.code === 'upstream_decode_limit', 5000);
  });

  test('a route without a credential passes a compressed answer through untouched', async () => {
    const r = await rawRequest(gw.gateway.url, { path: '/open/unknown-encoding/x-custom', headers: auth });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBe('x-custom');
  });
});

describe('G2: header names', () => {
  test.each(['plain', 'upper'])('a header whose name holds the credential (%s) is dropped, counted and logged', async (variant) => {
    const r = await rawRequest(gw.gateway.url, { path: `/hdr/header-name/${variant}`, headers: auth });
    expect(r.status).toBe(200);
    expect(r.headers['x-kept']).toBe('yes');
    expect(Object.keys(r.headers).join(' ')).not.toContain(HDR_TOKEN);
    expect(gw.logs()).toContain('dropped upstream response headers whose names held a credential');
    const metrics = await (await import('prom-client')).Registry.prototype.metrics.call(gw.gateway.metrics.registry);
    expect(metrics).toMatch(/portcullis_response_headers_dropped_total\{route="hdr"\} [1-9]/);
  });
});

describe('G2: encoded forms of the credential are masked', () => {
  const forms = Object.keys(ENCODE);
  test.each(forms)('bearer token, %s, in a JSON body', async (form) => {
    for (const chunked of [false, true]) {
      const r = await rawRequest(gw.gateway.url, { path: `/api/encoded/${form}${chunked ? '?chunked=1' : ''}`, headers: auth });
      expect(r.status).toBe(200);
      const v = JSON.parse(r.body).v as string;
      expect(v).toContain('*');
      expectNoSecret(seen(r), TOKEN);
      expect(DECODE[form](v)).not.toContain(TOKEN);
    }
  });

  test.each(forms)('basic password, %s', async (form) => {
    const r = await rawRequest(gw.gateway.url, { path: `/basic/encoded/${form}`, headers: auth });
    const v = JSON.parse(r.body).v as string;
    expect(v).toContain('*');
    expectNoSecret(seen(r), BASIC_PASSWORD);
    expect(DECODE[form](v)).not.toContain(BASIC_PASSWORD);
  });

  test('basic: the whole Authorization value echoed, raw or base64, is masked', async () => {
    const r = await rawRequest(gw.gateway.url, { path: '/basic/echo', headers: auth });
    const value = `Basic ${Buffer.from(`${BASIC_USER}:${BASIC_PASSWORD}`).toString('base64')}`;
    expect(JSON.parse(r.body).seen).toBe(`Basic ${'*'.repeat(value.length - 6)}`);
    const b64 = await rawRequest(gw.gateway.url, { path: '/basic/encoded/base64', headers: auth });
    expect(b64.body).not.toContain(Buffer.from(value).toString('base64').slice(4, -4));
  });

  test.each(['uri', 'form', 'uriLower'])('a Location header carrying the token %s-encoded', async (form) => {
    const r = await rawRequest(gw.gateway.url, { path: `/api/location/${form}`, headers: auth });
    expect(r.status).toBe(302);
    const key = new URL(String(r.headers.location)).searchParams.get('key') ?? '';
    expect(key).toContain('*');
    expectNoSecret(seen(r), TOKEN);
    expect(key).not.toContain(TOKEN);
  });
});

describe('G2: split echoes cannot be reassembled', () => {
  test.each(['events', 'lines', 'crlf'])('one character per SSE %s: the joined data holds no secret', async (variant) => {
    const r = await rawRequest(gw.gateway.url, { path: `/api/sse-split/${variant}`, headers: auth });
    expect(r.status).toBe(200);
    const joined = r.body
      .split(/\r\n|\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.replace(/^data: ?/, ''))
      .join('');
    expect(joined).toBe('*'.repeat(TOKEN.length));
  });
});

describe('G2: MCP tool results', () => {
  test.each([false, true])('a tool that echoes the credential in every encoding (JSON answer: %s)', async (json) => {
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.gateway.url}/mcp/`), {
      requestInit: { headers: { ...auth, ...(json ? { 'x-json': '1' } : {}) } },
    });
    const client = new Client({ name: 'leak-test', version: '1.0.0' });
    await client.connect(transport);
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    await client.close();
    const texts = (result.content as { text: string }[]).map((c) => c.text);
    expect(texts.find((t) => t.startsWith('raw:'))).toMatch(/^raw:\*{27,}$/);
    for (const t of texts) {
      const [form, ...rest] = t.split(':');
      const value = rest.join(':');
      expect(value).toContain('*');
      expectNoSecret(value, TOKEN);
      if (DECODE[form]) expect(DECODE[form](value)).not.toContain(TOKEN);
    }
  });
});

test('G2: no secret, in any of these forms, reached the logs or the audit trail', () => {
  for (const s of [TOKEN, HDR_TOKEN, BASIC_PASSWORD]) {
    expectNoSecret(gw.logs(), s);
    expectNoSecret(gw.auditText(), s);
  }
});

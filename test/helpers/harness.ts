/**
 * Test harness: real HTTP upstreams on port 0 and a real gateway built from a YAML config and
 * Rego compiled by the real OPA. Logs go to memory so tests can search them for secrets.
 */
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { parseConfig } from '../../src/config/load';
import { startGateway, type Gateway } from '../../src/gateway';
import { createLogger } from '../../src/observability/logger';

/** The OPA CLI the suite uses (set by scripts/env.sh). */
export const OPA = process.env.PORTCULLIS_OPA ?? path.join(os.homedir(), '.cache/portcullis/opa-v1.21.1/opa');
process.env.PORTCULLIS_OPA = OPA;

/** A request an upstream received. */
export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** A real upstream on 127.0.0.1:0 that records what it receives. */
export interface Upstream {
  readonly url: string;
  readonly received: Received[];
  readonly server: http.Server;
  close(): Promise<void>;
}

/** Starts an upstream; the default handler echoes method, url, headers and body as JSON. */
export async function startUpstream(handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void): Promise<Upstream> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (handler) return handler(req, res, body);
      const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** sha256 hex of an agent key, as the config stores it. */
export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** A started gateway with its files and captured logs. */
export interface TestGateway {
  readonly gateway: Gateway;
  readonly dir: string;
  readonly auditDir: string;
  readonly policyDir: string;
  /** Everything the gateway logged. */
  logs(): string;
  /** Parsed audit records, in order. */
  audit(): Record<string, any>[];
  /** The raw audit files' text. */
  auditText(): string;
  /** Waits until an audit record matches, or fails after `ms`. */
  waitForAudit(pred: (r: Record<string, any>) => boolean, ms?: number): Promise<Record<string, any>>;
  close(): Promise<void>;
}

/** Options for startTestGateway. */
export interface TestGatewayOptions {
  /** portcullis.yaml text; `{{upstream}}` etc. are substituted by the caller. */
  readonly yaml: string;
  /** Files of the policy directory (name → Rego). */
  readonly policies: Record<string, string>;
  readonly env?: NodeJS.ProcessEnv;
  /** Extra files to create relative to the config dir. */
  readonly files?: Record<string, string>;
  readonly dir?: string;
}

/** Writes the config and policies to a temp dir and starts the gateway on port 0. */
export async function startTestGateway(opts: TestGatewayOptions): Promise<TestGateway> {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'portcullis-test-'));
  const policyDir = path.join(dir, 'policies');
  mkdirSync(policyDir, { recursive: true });
  for (const [name, text] of Object.entries(opts.policies)) writeFileSync(path.join(policyDir, name), text);
  for (const [name, text] of Object.entries(opts.files ?? {})) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  const file = path.join(dir, 'portcullis.yaml');
  writeFileSync(file, opts.yaml);
  const config = parseConfig(opts.yaml, file, { env: { ...process.env, ...opts.env } });
  let logText = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      logText += chunk.toString();
      done();
    },
  });
  const gateway = await startGateway(config, { logger: createLogger('debug', sink), drainMs: 2000 });
  const auditDir = config.audit.path;
  const auditText = () =>
    existsSync(auditDir)
      ? readdirSync(auditDir)
          .filter((f) => f.endsWith('.jsonl'))
          .sort()
          .map((f) => readFileSync(path.join(auditDir, f), 'utf8').replace(/\0+$/, '')) // the newest segment's zero tail (preallocation)
          .join('')
      : '';
  const audit = () =>
    auditText()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, any>);
  return {
    gateway,
    dir,
    auditDir,
    policyDir,
    logs: () => logText,
    audit,
    auditText,
    async waitForAudit(pred, ms = 3000) {
      const until = Date.now() + ms;
      for (;;) {
        const hit = audit().find(pred);
        if (hit) return hit;
        if (Date.now() > until) throw new Error('no matching audit record');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () => gateway.close(),
  };
}

/** A fetch-like HTTP/1.1 request with full control of the raw target and headers. */
export function rawRequest(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string | string[]>; body?: string | Buffer },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Sends bytes on a raw TCP connection and returns the status line's code and the raw answer. */
export function rawHttp(url: string, text: string): Promise<{ status: number; raw: string }> {
  const u = new URL(url);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const net = require('node:net') as typeof import('node:net');
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname, () => sock.write(text));
    let raw = '';
    sock.on('data', (d) => {
      raw += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
      const headerEnd = raw.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(raw);
      if (m && headerEnd !== -1 && len && raw.length >= headerEnd + 4 + Number(len[1])) {
        sock.destroy();
        resolve({ status: Number(m[1]), raw });
      }
    });
    sock.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0), raw }));
    sock.on('error', reject);
  });
}

/** Options for oneRouteYaml. */
export interface OneRouteOptions {
  readonly upstream: string;
  /** Agent key of the single agent `bot` (omit for no agents). */
  readonly agentKey?: string;
  readonly admin?: boolean;
  readonly watch?: boolean;
  readonly audit?: string;
  readonly durability?: 'strict' | 'relaxed';
  /** Extra YAML appended under the `up` route (indented 4 spaces), e.g. timeouts. */
  readonly routeExtra?: string;
  /** Extra routes (YAML list items, indented 2 spaces). */
  readonly moreRoutes?: string;
}

/** A config with one route `up` (prefix /up/) to `upstream`, and optionally one agent `bot`. */
export function oneRouteYaml(o: OneRouteOptions): string {
  const agents = o.agentKey ? `agents:\n  - id: bot\n    key_sha256: "${keyHash(o.agentKey)}"\n` : '';
  return [
    'listen: 127.0.0.1:0',
    o.admin ? 'admin: { listen: 127.0.0.1:0 }' : 'admin: { enabled: false }',
    `policy: { path: ./policies, watch: ${o.watch ?? false} }`,
    `audit: { path: ${o.audit ?? './audit'}, durability: ${o.durability ?? 'strict'} }`,
    `${agents}routes:`,
    `  - name: up\n    prefix: /up/\n    upstream: ${o.upstream}/${o.routeExtra ? `\n    ${o.routeExtra}` : ''}`,
    o.moreRoutes ?? '',
  ].join('\n');
}

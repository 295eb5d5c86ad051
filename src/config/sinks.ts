/** Resolves audit.sinks: names unique, secrets and PEM files read, errors located (docs/audit-sinks.md). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Secret, unresolvedSecret } from '../secret';
import type { ResolveContext } from './context';
import type { RawSink } from './raw-config';
import type { KeyPath } from './source';
import type { SinkConfig, SinkTlsConfig } from './types';

/** Headers a webhook sets itself. */
const SINK_HEADERS = ['host', 'content-length', 'content-type', 'transfer-encoding', 'connection'];

function readPem(ctx: ResolveContext, value: string, at: KeyPath): string {
  const pemPath = path.resolve(ctx.baseDir, value);
  let text: string;
  try {
    text = readFileSync(pemPath, 'utf8');
  } catch (err) {
    return ctx.fail('CONFIG_PATH', at, `cannot read ${pemPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN ')) ctx.fail('CONFIG_PATH', at, `${pemPath} is not a PEM file`);
  return text;
}

function tlsOf(ctx: ResolveContext, raw: RawSink['tls'], at: KeyPath): SinkTlsConfig | null {
  if (raw === undefined) return null;
  if ((raw.cert === undefined) !== (raw.key === undefined)) ctx.fail('CONFIG_CONFLICT', at, 'cert and key go together: set both or neither');
  const keyPath = raw.key === undefined ? null : path.resolve(ctx.baseDir, raw.key);
  return Object.freeze({
    ca: raw.ca === undefined ? null : readPem(ctx, raw.ca, [...at, 'ca']),
    cert: raw.cert === undefined ? null : readPem(ctx, raw.cert, [...at, 'cert']),
    key:
      keyPath === null
        ? null
        : ctx.secretMode === 'skip'
          ? unresolvedSecret(`file ${keyPath}`)
          : new Secret(readPem(ctx, raw.key!, [...at, 'key']), `file ${keyPath}`),
    servername: raw.servername ?? null,
  });
}

function sinkOf(ctx: ResolveContext, r: RawSink, at: KeyPath): SinkConfig {
  const common = { name: r.name, maxBackoffMs: r.max_backoff_ms };
  const tls = tlsOf(ctx, r.tls, [...at, 'tls']);
  if (r.type === 'syslog') {
    const { host, port } = ctx.hostPort(r.address, [...at, 'address'], 1);
    return Object.freeze({
      ...common,
      type: 'syslog',
      host,
      port,
      tls,
      facility: r.facility,
      appName: r.app_name,
      hostname: r.hostname ?? null,
      bom: r.bom,
      confirmMs: r.confirm_ms,
      connectTimeoutMs: r.connect_timeout_ms,
    });
  }
  let url: URL;
  try {
    url = new URL(r.url);
  } catch {
    return ctx.fail('CONFIG_URL', [...at, 'url'], `url ${JSON.stringify(r.url)} is not a valid URL`);
  }
  if (url.username || url.password) ctx.fail('CONFIG_URL', [...at, 'url'], 'url must not embed credentials: use a header or token from a secret');
  const http = { ...common, url: url.href, timeoutMs: r.timeout_ms, tls };
  if (r.type === 'webhook') {
    const headers: Record<string, string | Secret> = {};
    for (const [h, v] of Object.entries(r.headers)) {
      if (SINK_HEADERS.includes(h.toLowerCase()))
        ctx.fail('CONFIG_VALUE', [...at, 'headers', h], `header ${h} is set by the sink: expected another header`, { key: true });
      headers[h] = typeof v === 'string' ? v : ctx.secrets.read(v, [...at, 'headers', h]);
    }
    return Object.freeze({ ...http, type: 'webhook', headers: Object.freeze(headers), format: r.format });
  }
  return Object.freeze({
    ...http,
    type: 'splunk_hec',
    token: ctx.secrets.read(r.token, [...at, 'token']),
    index: r.index ?? null,
    source: r.source,
    sourcetype: r.sourcetype,
    host: r.host ?? null,
  });
}

/** The sinks; a repeated name is an error at the second one. */
export function resolveSinks(ctx: ResolveContext, list: readonly RawSink[]): readonly SinkConfig[] {
  const names = new Set<string>();
  return Object.freeze(
    list.map((r, i) => {
      const at = ['audit', 'sinks', i];
      if (names.has(r.name)) ctx.fail('CONFIG_DUPLICATE_NAME', [...at, 'name'], `duplicate sink name ${JSON.stringify(r.name)}`);
      names.add(r.name);
      return sinkOf(ctx, r, at);
    }),
  );
}

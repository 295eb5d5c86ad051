/**
 * A generic JSON webhook: each batch is one POST; any 2xx answer acknowledges the whole batch,
 * anything else (or no answer within the timeout) fails it and it is sent again later.
 *
 * Two bodies (docs/audit-sinks.md):
 * - `json` (default), `application/json`: `{"records":[<record>,<record>,...]}`.
 * - `ndjson`, `application/x-ndjson`: the record lines, one per line.
 * Either way each record is the trail's line verbatim (embedded, never re-serialised), so a
 * receiver can dedupe by `seq` and, with ndjson, check the hash chain on the exact bytes.
 */
import { SINK_SCHEMAS } from '../../config/schema';
import { revealSecret, Secret } from '../../secret';
import { httpPoster, receiverUrl } from './http-delivery';
import { parseRecordLine, SinkError, type RecordSink } from './record-sink';
import type { SinkTlsOptions } from './sink-tls';

/** Options of webhookSink. */
export interface WebhookSinkOptions {
  readonly name: string;
  readonly url: string;
  /** Static request headers; Secret values are sent but never logged. */
  readonly headers?: Readonly<Record<string, string | Secret>>;
  /** Default json. */
  readonly format?: 'json' | 'ndjson';
  /** Whole-attempt timeout. Default 10000 ms. */
  readonly timeoutMs?: number;
  readonly tls?: SinkTlsOptions | null;
}

const RESERVED = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection']);

/** The request body of a batch. */
export function webhookBody(lines: readonly string[], format: 'json' | 'ndjson'): string {
  return format === 'ndjson' ? `${lines.join('\n')}\n` : `{"records":[${lines.join(',')}]}`;
}

/** Defaults of unset options: the config schema's. */
const DEFAULTS = SINK_SCHEMAS.webhook.properties;

/** Builds a webhook sink. Throws TypeError on invalid options. */
export function webhookSink(options: WebhookSinkOptions): RecordSink {
  const what = `webhook sink "${options.name}"`;
  const url = receiverUrl(options.url, what);
  const format = options.format ?? DEFAULTS.format.default;
  if (format !== 'json' && format !== 'ndjson') throw new TypeError(`${what}: format must be json or ndjson`);
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeout_ms.default;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new TypeError(`${what}: timeoutMs must be a positive integer`);
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.headers ?? {})) {
    if (RESERVED.has(key.toLowerCase())) throw new TypeError(`${what}: the header "${key}" is set by the sink`);
    headers[key.toLowerCase()] = value instanceof Secret ? revealSecret(value) : value;
  }
  headers['content-type'] = format === 'ndjson' ? 'application/x-ndjson' : 'application/json';
  const poster = httpPoster({ url: url.href, timeoutMs, tls: options.tls });
  return {
    name: options.name,
    async deliver(lines) {
      for (const line of lines) parseRecordLine(line);
      const answer = await poster.post(headers, webhookBody(lines, format));
      if (answer.status < 200 || answer.status > 299) throw new SinkError(`${poster.origin} answered ${answer.status}`);
    },
    close: () => poster.close(),
  };
}

/**
 * Splunk HTTP Event Collector (HEC). Each batch is one POST of concatenated event objects to
 * the collector's `/services/collector/event` endpoint, authenticated with
 * `Authorization: Splunk <token>`:
 *
 *   {"time":1767225600.123,"host":"gw-1","source":"portcullis","sourcetype":"portcullis:audit","event":<record>}
 *
 * `time` is the record's own time in epoch seconds (milliseconds as decimals); `event` is the
 * record line verbatim. A batch is acknowledged by a 2xx answer whose JSON body has `"code": 0`
 * (HEC's "Success"). HEC's indexer acknowledgement (channels and /services/collector/ack) is not
 * used: a token with indexer acknowledgement enabled refuses requests without a channel.
 */
import { SINK_SCHEMAS } from '../../config/schema';
import os from 'node:os';
import { revealSecret, type Secret } from '../../secret';
import { httpPoster, receiverUrl } from './http-delivery';
import { parseRecordLine, SinkError, type RecordSink } from './record-sink';
import type { SinkTlsOptions } from './sink-tls';

/** Options of splunkHecSink. */
export interface SplunkHecSinkOptions {
  readonly name: string;
  /** e.g. https://splunk.example:8088/services/collector/event */
  readonly url: string;
  readonly token: Secret;
  /** Index to write to; default: the token's default index. */
  readonly index?: string | null;
  /** Default "portcullis". */
  readonly source?: string;
  /** Default "portcullis:audit". */
  readonly sourcetype?: string;
  /** Default os.hostname(). */
  readonly host?: string;
  /** Whole-attempt timeout. Default 10000 ms. */
  readonly timeoutMs?: number;
  readonly tls?: SinkTlsOptions | null;
}

/** The event metadata HEC gets with every record. */
export interface HecMetadata {
  readonly host: string;
  readonly source: string;
  readonly sourcetype: string;
  readonly index: string | null;
}

/** The HEC request body of a batch: one event object per record, newline separated. */
export function hecBody(lines: readonly string[], meta: HecMetadata): string {
  const fixed =
    `"host":${JSON.stringify(meta.host)},"source":${JSON.stringify(meta.source)},"sourcetype":${JSON.stringify(meta.sourcetype)}` +
    (meta.index ? `,"index":${JSON.stringify(meta.index)}` : '');
  let body = '';
  for (const line of lines) {
    const record = parseRecordLine(line);
    const ms = typeof record.time === 'string' ? Date.parse(record.time) : Number.NaN;
    const time = Number.isFinite(ms) ? (ms / 1000).toFixed(3) : (Date.now() / 1000).toFixed(3);
    body += `{"time":${time},${fixed},"event":${line}}\n`;
  }
  return body;
}

/** Defaults of unset options: the config schema's. */
const DEFAULTS = SINK_SCHEMAS.splunk_hec.properties;

/** Builds a Splunk HEC sink. Throws TypeError on invalid options. */
export function splunkHecSink(options: SplunkHecSinkOptions): RecordSink {
  const what = `splunk_hec sink "${options.name}"`;
  const url = receiverUrl(options.url, what);
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeout_ms.default;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new TypeError(`${what}: timeoutMs must be a positive integer`);
  const meta: HecMetadata = Object.freeze({
    host: options.host ?? os.hostname(),
    source: options.source ?? DEFAULTS.source.default,
    sourcetype: options.sourcetype ?? DEFAULTS.sourcetype.default,
    index: options.index ?? null,
  });
  const headers = { authorization: `Splunk ${revealSecret(options.token)}`, 'content-type': 'application/json' };
  const poster = httpPoster({ url: url.href, timeoutMs, tls: options.tls });
  return {
    name: options.name,
    async deliver(lines) {
      const answer = await poster.post(headers, hecBody(lines, meta));
      let ack: { code?: unknown; text?: unknown } = {};
      try {
        ack = JSON.parse(answer.body) as typeof ack;
      } catch {
        /* not JSON: not an acknowledgement */
      }
      if (answer.status >= 200 && answer.status <= 299 && ack.code === 0) return;
      const detail = typeof ack.code === 'number' ? ` (HEC code ${ack.code}${typeof ack.text === 'string' ? `: ${ack.text.slice(0, 200)}` : ''})` : '';
      throw new SinkError(`${poster.origin} answered ${answer.status}${detail}`);
    },
    close: () => poster.close(),
  };
}

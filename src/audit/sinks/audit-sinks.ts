/**
 * The configured audit sinks of a gateway: builds each sink from its config (so a bad option
 * fails at start-up), runs one SinkRunner per sink beside the request path, and stops them.
 * The gateway starts them once the audit writer is open and stops them before it closes.
 */
import type { Logger } from 'pino';
import type { SinkConfig, SinkTlsConfig } from '../../config/types';
import { revealSecret } from '../../secret';
import type { RecordSink } from './record-sink';
import { SinkRunner, type SinkMetrics, type SinkStatus } from './sink-runner';
import type { SinkTlsOptions } from './sink-tls';
import { splunkHecSink } from './splunk-hec-sink';
import { syslogSink } from './syslog-sink';
import { webhookSink } from './webhook-sink';

/** The running sinks. */
export interface AuditSinks {
  /** Tells the sinks new records may be there (they also poll). */
  nudge(): void;
  status(): SinkStatus[];
  /** Ships what it can within `graceMs`, then stops (see SinkRunner.close). */
  close(graceMs?: number): Promise<void>;
}

/** Options of startAuditSinks. */
export interface AuditSinksOptions {
  readonly auditDir: string;
  readonly durableSeq: () => number;
  readonly log: Logger;
  readonly metrics?: SinkMetrics;
  /** Test hook: poll interval and first back-off (ms). */
  readonly pollMs?: number;
  readonly minBackoffMs?: number;
}

function tlsOptions(tls: SinkTlsConfig | null): SinkTlsOptions | null {
  if (!tls) return null;
  return {
    ca: tls.ca ?? undefined,
    cert: tls.cert ?? undefined,
    key: tls.key ? revealSecret(tls.key) : undefined,
    servername: tls.servername ?? undefined,
  };
}

/** Builds the sink a config entry describes. Throws TypeError on invalid options. */
export function createSink(config: SinkConfig): RecordSink {
  switch (config.type) {
    case 'syslog':
      return syslogSink({
        name: config.name,
        host: config.host,
        port: config.port,
        tls: tlsOptions(config.tls),
        facility: config.facility,
        appName: config.appName,
        hostname: config.hostname ?? undefined,
        bom: config.bom,
        confirmMs: config.confirmMs,
        connectTimeoutMs: config.connectTimeoutMs,
      });
    case 'webhook':
      return webhookSink({
        name: config.name,
        url: config.url,
        headers: config.headers,
        format: config.format,
        timeoutMs: config.timeoutMs,
        tls: tlsOptions(config.tls),
      });
    case 'splunk_hec':
      return splunkHecSink({
        name: config.name,
        url: config.url,
        token: config.token,
        index: config.index,
        source: config.source,
        sourcetype: config.sourcetype,
        host: config.host ?? undefined,
        timeoutMs: config.timeoutMs,
        tls: tlsOptions(config.tls),
      });
  }
}

/** Builds every sink, then starts them. Nothing starts if one cannot be built. */
export function startAuditSinks(configs: readonly SinkConfig[], options: AuditSinksOptions): AuditSinks {
  const sinks: { config: SinkConfig; sink: RecordSink }[] = [];
  try {
    for (const config of configs) sinks.push({ config, sink: createSink(config) });
  } catch (err) {
    for (const s of sinks) void s.sink.close();
    throw err;
  }
  const runners = sinks.map(
    ({ config, sink }) =>
      new SinkRunner({
        sink,
        auditDir: options.auditDir,
        durableSeq: options.durableSeq,
        log: options.log,
        metrics: options.metrics,
        pollMs: options.pollMs,
        minBackoffMs: options.minBackoffMs,
        maxBackoffMs: config.maxBackoffMs,
      }),
  );
  for (const r of runners) r.start();
  return {
    nudge: () => {
      for (const r of runners) r.nudge();
    },
    status: () => runners.map((r) => r.status()),
    close: async (graceMs) => {
      await Promise.all(runners.map((r) => r.close(graceMs)));
    },
  };
}

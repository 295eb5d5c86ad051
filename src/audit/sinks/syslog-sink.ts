/**
 * Syslog over TCP, optionally TLS (RFC 5425): one long-lived connection, octet-counted RFC 5424
 * messages (src/audit/sinks/syslog-format.ts), reconnecting after any error.
 *
 * Plain syslog has no application acknowledgement (RELP has one; it is not implemented). A
 * batch counts as delivered when the kernel accepted all its bytes and the connection was still
 * open `confirmMs` later. The wait catches the common loss of TCP syslog: bytes written into a
 * connection whose receiver has just died are accepted locally, and the FIN or RST that says
 * so arrives one round trip later. It cannot catch a receiver that dies after reading the bytes
 * but before storing them, nor a host that vanishes without a FIN or RST (only TCP keep-alive
 * notices, much later). docs/audit-sinks.md says when to prefer an HTTP sink or a collector
 * that tails the files.
 */
import { SINK_SCHEMAS } from '../../config/schema';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { parseRecordLine, SinkError, type RecordSink } from './record-sink';
import type { SinkTlsOptions } from './sink-tls';
import { formatSyslogMessage, frameOctetCounted, syslogHeader, type SyslogHeader } from './syslog-format';

/** Options of syslogSink. */
export interface SyslogSinkOptions {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Present (even empty) to use TLS. */
  readonly tls?: SinkTlsOptions | null;
  /** Default 13 ("log audit"). */
  readonly facility?: number;
  /** Default "portcullis". */
  readonly appName?: string;
  /** Default os.hostname(). */
  readonly hostname?: string;
  /** Send MSG-UTF8 (with BOM). Default false. */
  readonly bom?: boolean;
  /** How long the connection must stay open after a batch is written. Default 200 ms. */
  readonly confirmMs?: number;
  /** Connect (and TLS handshake) timeout. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
}

function check(condition: boolean, name: string, problem: string): void {
  if (!condition) throw new TypeError(`syslog sink "${name}": ${problem}`);
}

interface Connection {
  readonly socket: net.Socket;
  /** Set once the connection failed or the receiver closed it. */
  failure: Error | null;
  /** Called once when `failure` is set; each delivery adds itself and removes itself after. */
  readonly waiters: Set<(err: Error) => void>;
}

/** Resolves with the connection's failure, or never; `off` detaches (no reaction is left behind). */
function onFailure(conn: Connection): { promise: Promise<Error>; off: () => void } {
  let waiter: (err: Error) => void = () => undefined;
  const promise = new Promise<Error>((resolve) => (waiter = resolve));
  if (conn.failure) waiter(conn.failure);
  else conn.waiters.add(waiter);
  return { promise, off: () => conn.waiters.delete(waiter) };
}

/** Defaults of unset options: the config schema's. */
const DEFAULTS = SINK_SCHEMAS.syslog.properties;

/** Builds a syslog sink. Throws TypeError on invalid options (before anything connects). */
export function syslogSink(options: SyslogSinkOptions): RecordSink {
  const name = options.name;
  check(typeof options.host === 'string' && options.host.length > 0, name, 'host is required');
  check(Number.isInteger(options.port) && options.port > 0 && options.port < 65536, name, 'port must be 1..65535');
  const confirmMs = options.confirmMs ?? DEFAULTS.confirm_ms.default;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connect_timeout_ms.default;
  check(Number.isInteger(confirmMs) && confirmMs >= 0, name, 'confirmMs must be a non-negative integer');
  check(Number.isInteger(connectTimeoutMs) && connectTimeoutMs > 0, name, 'connectTimeoutMs must be a positive integer');
  check(!options.tls?.cert === !options.tls?.key, name, 'a client certificate needs its key, and a key its certificate');
  let header: SyslogHeader;
  try {
    header = syslogHeader({
      facility: options.facility ?? DEFAULTS.facility.default,
      hostname: options.hostname ?? os.hostname(),
      appName: options.appName ?? DEFAULTS.app_name.default,
      procId: String(process.pid),
      bom: options.bom ?? DEFAULTS.bom.default,
    });
  } catch (err) {
    throw new TypeError(`syslog sink "${name}": ${(err as Error).message}`);
  }
  const where = `${options.host}:${options.port}`;
  let current: Connection | null = null;
  let closed = false;

  function open(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const t = options.tls;
      const socket = t
        ? tls.connect({
            host: options.host,
            port: options.port,
            ca: t.ca,
            cert: t.cert,
            key: t.key,
            servername: t.servername ?? (net.isIP(options.host) ? undefined : options.host),
          })
        : net.connect({ host: options.host, port: options.port });
      const conn: Connection = { socket, failure: null, waiters: new Set() };
      const fail = (err: Error) => {
        if (conn.failure) return;
        conn.failure = err;
        for (const w of conn.waiters) w(err);
        conn.waiters.clear();
        socket.destroy();
      };
      const timer = setTimeout(() => fail(new SinkError(`connecting to ${where} timed out after ${connectTimeoutMs} ms`)), connectTimeoutMs);
      socket.on('error', (err: NodeJS.ErrnoException) => fail(new SinkError(`syslog connection to ${where} failed: ${err.code ?? err.message}`)));
      socket.on('end', () => fail(new SinkError(`the syslog receiver at ${where} closed the connection`)));
      socket.on('close', () => fail(new SinkError(`the syslog connection to ${where} closed`)));
      // Syslog receivers send nothing; reading keeps the socket flowing so a FIN is noticed.
      socket.on('data', () => undefined);
      socket.once(t ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.setKeepAlive(true, 30_000);
        socket.setNoDelay(true);
        resolve(conn);
      });
      const failure = onFailure(conn);
      void failure.promise.then((err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once(t ? 'secureConnect' : 'connect', () => failure.off());
    });
  }

  return {
    name,
    async deliver(lines) {
      if (closed) throw new SinkError('the sink is closed');
      const frames: Buffer[] = [];
      for (const line of lines) frames.push(frameOctetCounted(formatSyslogMessage(line, parseRecordLine(line), header)));
      if (!current || current.failure) current = await open();
      const conn = current;
      const failure = onFailure(conn);
      try {
        await new Promise<void>((resolve, reject) => {
          conn.socket.write(Buffer.concat(frames), (err) =>
            err ? reject(conn.failure ?? new SinkError(`syslog write to ${where} failed: ${err.message}`)) : resolve(),
          );
          void failure.promise.then(reject);
        });
        if (confirmMs > 0) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, confirmMs))), failure.promise]);
          clearTimeout(timer);
        }
      } finally {
        failure.off();
      }
      if (conn.failure) throw conn.failure;
    },
    async close() {
      closed = true;
      current?.socket.destroy();
      current = null;
    },
  };
}

/**
 * RFC 5424 messages for audit records, framed for TCP by octet counting (RFC 6587 §3.4.1,
 * the framing RFC 5425 mandates for TLS). Pure functions, so the exact bytes are unit-tested.
 *
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
 *
 * - PRI = facility × 8 + severity. Facility defaults to 13 ("log audit"). Severity: a deny
 *   decision is warning (4); a record of a failure (policy_rejected, audit_recovered after an
 *   outage, recovered_torn_tail) is err (3); everything else is info (6).
 * - TIMESTAMP is the record's own `time` (when it happened, not when it was shipped).
 * - MSGID is the record type; STRUCTURED-DATA is NILVALUE: everything is in MSG.
 * - MSG is the record line exactly as in the trail, so the receiver can check the hash chain.
 *   It is sent without a BOM by default (RFC 5424 calls that MSG-ANY): a BOM would end up in
 *   front of the JSON in most receivers' output and break JSON parsers. `bom: true` sends
 *   MSG-UTF8 (BOM first) for receivers that want it.
 */
import type { SinkRecord } from './record-sink';

/** Header fields that do not change between messages. */
export interface SyslogHeader {
  /** 0..23; 13 is "log audit". */
  readonly facility: number;
  readonly hostname: string;
  readonly appName: string;
  readonly procId: string;
  /** Prefix MSG with the UTF-8 byte order mark (MSG-UTF8). */
  readonly bom: boolean;
}

/** RFC 5424 severities used. */
export const SEVERITY = Object.freeze({ err: 3, warning: 4, info: 6 });

const FAILURE_TYPES = new Set(['policy_rejected', 'config_rejected', 'audit_recovered', 'recovered_torn_tail']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The severity of a record. */
export function severityOf(record: SinkRecord): number {
  if (record.type === 'decision' && record.decision === 'deny') return SEVERITY.warning;
  if (FAILURE_TYPES.has(record.type)) return SEVERITY.err;
  return SEVERITY.info;
}

/**
 * A header field: printable US-ASCII without spaces (%d33-126), at most `max` characters,
 * NILVALUE ("-") when nothing is left.
 */
export function headerField(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

/** Builds the fixed header fields, cleaned to RFC 5424's alphabet and lengths. */
export function syslogHeader(options: { facility: number; hostname: string; appName: string; procId: string; bom: boolean }): SyslogHeader {
  if (!Number.isInteger(options.facility) || options.facility < 0 || options.facility > 23) throw new TypeError('facility must be an integer from 0 to 23');
  return Object.freeze({
    facility: options.facility,
    hostname: headerField(options.hostname, 255),
    appName: headerField(options.appName, 48),
    procId: headerField(options.procId, 128),
    bom: options.bom,
  });
}

/** One RFC 5424 message (without framing) for a record line. */
export function formatSyslogMessage(line: string, record: SinkRecord, header: SyslogHeader): Buffer {
  const pri = header.facility * 8 + severityOf(record);
  const timestamp = typeof record.time === 'string' && RFC3339.test(record.time) ? record.time : '-';
  const msgid = headerField(record.type, 32);
  const head = Buffer.from(`<${pri}>1 ${timestamp} ${header.hostname} ${header.appName} ${header.procId} ${msgid} - `, 'ascii');
  const msg = Buffer.from(line, 'utf8');
  return header.bom ? Buffer.concat([head, BOM, msg]) : Buffer.concat([head, msg]);
}

/** Octet-counting framing: `MSG-LEN SP SYSLOG-MSG`, MSG-LEN in bytes. */
export function frameOctetCounted(message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${message.length} `, 'ascii'), message]);
}

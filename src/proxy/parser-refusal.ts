/**
 * Requests refused before there is a request: what Node's HTTP parser (llhttp) rejects —
 * Content-Length with Transfer-Encoding, an obfuscated Transfer-Encoding, obs-fold, bare LF, a
 * bad chunk, oversized headers, a timeout — and CONNECT, which Node hands to a `connect`
 * listener (none means the socket is closed without a word). Each gets what every other refusal
 * gets: a stable code, a JSON answer with `x-portcullis-error`, an audit record (G4) and a
 * metric. There is no agent, route or canonical path to record: the bytes were never trusted.
 * The raw bytes (`err.rawPacket`) are never logged or recorded: they may hold an agent key.
 *
 * HTTP/0.9 request lines (`GET /x` with no version) are refused by the listener before the
 * parser sees them (listener.ts, `refuseHttp09`); one that follows another request on a
 * kept-alive connection is parsed by llhttp as version 0.9 once a blank line follows, and
 * `assertHttp1` refuses it in the pipeline.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { decisionRecord } from '../audit/call-records';
import type { AuditLog } from '../audit/writer';
import { ERROR_CODES, GatewayError, type ErrorCode } from '../errors';
import { NO_ROUTE, type Metrics } from '../observability/metrics';

/** What a parser refusal needs: where to record it and count it. */
export interface ParserRefusalDeps {
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly log: Logger;
}

const NO_BODY = Buffer.alloc(0);

/** Longest CONNECT target kept in the record. */
const TARGET_CAP = 512;

/** Error codes of a client that went away: there is no one to answer and nothing to record. */
const GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** Throws PC_BAD_HTTP for a request llhttp parsed as HTTP/0.9 (a request line without a version). */
export function assertHttp1(req: IncomingMessage): void {
  if (req.httpVersionMajor !== 1) throw new GatewayError('PC_BAD_HTTP', `HTTP/${req.httpVersion} is not accepted: send HTTP/1.1`);
}

/** The `clientError` handler: answers and audits what the parser refused. */
export function refuseUnparsed(err: Error & { code?: string; reason?: string }, socket: Duplex, deps: ParserRefusalDeps): void {
  if ((err.code && GONE.has(err.code)) || !socket.writable) {
    socket.destroy();
    return;
  }
  const code: ErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'PC_HEADERS_TOO_LARGE' : 'PC_BAD_HTTP';
  const why =
    code === 'PC_HEADERS_TOO_LARGE'
      ? 'the request line and headers exceed 16 KiB'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 'the request did not arrive in time'
        : `the HTTP parser refused the request${err.reason ? `: ${err.reason}` : ''}`;
  void refuse(socket, deps, code, why, [`${why}${err.code ? ` (${err.code})` : ''}`], '', '');
}

/** A connection whose first line is an HTTP/0.9 request (listener.ts): refused at once. */
export function refuseHttp09(socket: Duplex, deps: ParserRefusalDeps): void {
  const why = 'HTTP/0.9 is not accepted: send HTTP/1.1';
  void refuse(socket, deps, 'PC_BAD_HTTP', why, [why], '', '');
}

/** The `connect` handler: Portcullis is not a forward proxy. */
export function refuseConnect(req: IncomingMessage, socket: Duplex, deps: ParserRefusalDeps): void {
  const why = 'CONNECT is not accepted: Portcullis is not a forward proxy';
  void refuse(socket, deps, 'PC_BAD_HTTP', why, [why], 'CONNECT', (req.url ?? '').slice(0, TARGET_CAP));
}

async function refuse(
  socket: Duplex,
  deps: ParserRefusalDeps,
  code: ErrorCode,
  message: string,
  reasons: string[],
  method: string,
  path: string,
): Promise<void> {
  const id = randomUUID();
  let answer: ErrorCode = code;
  deps.metrics.decisions.inc({ route: NO_ROUTE, decision: 'deny', code });
  const facts = { time: new Date().toISOString(), decisionId: id, agent: null, route: null, method, path, body: NO_BODY, policyRevision: null };
  const record = decisionRecord(facts, { decision: 'deny', reasons, code, status: ERROR_CODES[code].status, credential: null });
  try {
    await deps.audit.append(record);
  } catch (e) {
    deps.metrics.auditFailures.inc();
    deps.log.error({ decision_id: id, code, err: (e as Error).message }, 'could not record a parser refusal in the audit log');
    // As in local-reply.ts: a refusal the agent sees always has its record (G4).
    answer = 'PC_AUDIT_UNAVAILABLE';
    message = 'the decision could not be recorded; nothing was forwarded';
    reasons = ['audit log unavailable'];
  }
  deps.log.debug({ decision_id: id, code, reasons }, 'refused a request the HTTP parser could not accept');
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status = ERROR_CODES[answer].status;
  const body = JSON.stringify({ error: { code: answer, message, reasons, decision_id: id } });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-portcullis-decision-id: ${id}\r\n` +
      `x-portcullis-error: ${answer}\r\n` +
      'cache-control: no-store\r\n' +
      (status === 503 ? 'retry-after: 1\r\n' : '') +
      'connection: close\r\n\r\n' +
      body,
  );
  // A client that never reads its answer does not keep the socket.
  setTimeout(() => socket.destroy(), 5_000).unref();
}

/**
 * The agent listener: a TCP server that looks at the first bytes of each connection before Node's
 * HTTP parser gets them. An HTTP/0.9 request line (`GET /x` and a line end, no version) is a
 * complete request in that protocol, but to llhttp it is the start of one whose headers have not
 * come yet: the connection would hang until the header timeout. Here it is refused at once (400
 * PC_BAD_HTTP, audited: parser-refusal.ts). Everything else is handed to the HTTP server
 * unchanged (the bytes read are put back), once per connection, so a kept-alive connection pays
 * for this once. A connection that sends nothing within HANDOVER_MS is handed over as it is, and
 * the HTTP server's own timeouts apply.
 */
import type http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';

/** Longest wait for a connection's first bytes before handing it to the HTTP server anyway. */
const HANDOVER_MS = 1000;

/** `METHOD SP target` and a line end, with no HTTP version (leading empty lines allowed, RFC 9112 §2.2). */
const HTTP09 = /^(?:\r?\n)*[A-Z]{1,16} [^\s]+\r?\n/;

/** True when the first bytes of a connection are an HTTP/0.9 request line. */
export function isHttp09RequestLine(first: Buffer): boolean {
  return HTTP09.test(first.toString('latin1', 0, Math.min(first.length, 8192)));
}

/**
 * A TCP (or, given `tlsOptions`, TLS) server feeding `server` (which must not listen itself). `refuse` answers a connection
 * whose first line is HTTP/0.9. The HTTP server is told it is listening, so its request and
 * header timeouts run. `onTlsRefused` hears of each refused handshake (logging only).
 */
export function createAgentListener(
  server: http.Server,
  refuse: (socket: net.Socket) => void,
  tlsOptions?: tls.TlsOptions,
  onTlsRefused?: (err: Error, socket: net.Socket) => void,
): net.Server {
  const screen = (socket: net.Socket) => {
    let handed = false;
    const onError = () => socket.destroy();
    socket.on('error', onError);
    const handOver = (first: Buffer | null) => {
      if (handed) return;
      handed = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onError);
      if (first && isHttp09RequestLine(first)) return refuse(socket);
      if (first) socket.unshift(first);
      server.emit('connection', socket);
    };
    const onReadable = () => handOver(socket.read() as Buffer | null);
    const timer = setTimeout(() => handOver(null), HANDOVER_MS);
    socket.on('readable', onReadable);
  };
  // With TLS, the screening starts after the handshake: a client certificate that does not
  // verify (client_auth required) ends the connection before any byte reaches the HTTP server.
  const listener = tlsOptions ? tls.createServer(tlsOptions, screen) : net.createServer({ pauseOnConnect: true }, screen);
  if (tlsOptions)
    listener.on('tlsClientError', (err, socket) => {
      onTlsRefused?.(err, socket);
      socket.destroy();
    });
  listener.once('listening', () => server.emit('listening'));
  return listener;
}

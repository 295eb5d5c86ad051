/** TLS client settings shared by the sinks (syslog over TLS, HTTPS receivers). */

/** TLS client settings: PEM contents, not paths (the config loader reads the files). */
export interface SinkTlsOptions {
  /** CA certificates to trust instead of Node's bundled roots (for a private or self-signed CA). */
  readonly ca?: string | Buffer;
  /** Client certificate and key, for receivers that authenticate senders. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Name to verify the receiver's certificate against (and send as SNI). Default: the host. */
  readonly servername?: string;
}

/**
 * The mTLS method: the client certificate of the agent's TLS connection, verified by Node's TLS
 * stack against tls.client_ca (src/edge/tls.ts). Only the socket's own verification counts:
 * no header (X-Forwarded-Client-Cert, X-SSL-Client-*) is ever read. The agent id is the SPIFFE
 * ID, the one `spiffe://` URI SAN the X.509-SVID spec allows (a certificate with two is
 * refused), or the subject CN with `id_from: subject_cn`.
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { MtlsIdentityConfig } from '../config/types';
import { GatewayError } from '../errors';
import type { AgentIdentity, IdentityMethod } from './identity-method';

function refused(reason: string): GatewayError {
  return new GatewayError('PC_CLIENT_CERT_REQUIRED', 'a client certificate that verifies against the configured CA is required', [reason]);
}

/**
 * The URI SANs of a certificate, from Node's `subjectaltname` text (`DNS:a, URI:b`). Node writes
 * a value holding a comma or quote as a JSON string (`DNS:"x, URI:spiffe://…"`), so the text is
 * read entry by entry, never searched: a quoted value of another type cannot pass for a URI SAN.
 */
export function uriSans(cert: PeerCertificate): string[] {
  const text = cert.subjectaltname ?? '';
  const out: string[] = [];
  const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,"]*)(?:, |$)/y;
  let i = 0;
  while (i < text.length) {
    entry.lastIndex = i;
    const m = entry.exec(text);
    if (!m) throw refused('client certificate subject alternative names cannot be read');
    const value = m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2];
    if (m[1] === 'URI') out.push(value);
    i = entry.lastIndex;
  }
  return out;
}

/** The SPIFFE ID of a certificate, or a refusal naming why it has none acceptable. */
export function spiffeIdOf(cert: PeerCertificate, trustDomain: string | null): string {
  const uris = uriSans(cert);
  if (uris.length !== 1) throw refused(`client certificate has ${uris.length} URI SANs: a SPIFFE X.509-SVID has exactly one`);
  const m = /^spiffe:\/\/([a-z0-9._-]+)(\/[A-Za-z0-9._\-/]*)?$/.exec(uris[0]);
  // SPIFFE ID spec §2.2: a path of one or more segments, none empty, `.` or `..`; at most 2048 bytes in all.
  const segments = m?.[2]?.slice(1).split('/') ?? [];
  if (!m || segments.length === 0 || segments.some((x) => x === '' || x === '.' || x === '..') || uris[0].length > 2048)
    throw refused('client certificate URI SAN is not a SPIFFE ID');
  if (trustDomain !== null && m[1] !== trustDomain) throw refused(`client certificate SPIFFE ID is not in trust domain ${trustDomain}`);
  return uris[0];
}

/** Builds the mTLS method. */
export function mtlsMethod(cfg: MtlsIdentityConfig): IdentityMethod {
  return {
    name: 'mtls',
    identify: () => null,
    identifyConnection(socket) {
      const tls = socket as Partial<TLSSocket>;
      if (tls.encrypted !== true || typeof tls.getPeerCertificate !== 'function') return null;
      const cert = tls.getPeerCertificate();
      // No certificate presented (client_auth optional): other methods decide.
      if (cert === null || Object.keys(cert).length === 0) return null;
      if (tls.authorized !== true) throw refused(`client certificate not verified: ${String(tls.authorizationError ?? 'unknown')}`);
      const spiffe = cfg.idFrom === 'spiffe' || uriSans(cert).some((u) => u.startsWith('spiffe:')) ? spiffeIdOf(cert, cfg.trustDomain) : null;
      const cn = cert.subject?.CN;
      const id = cfg.idFrom === 'spiffe' ? spiffe : typeof cn === 'string' && cn !== '' ? cn : null;
      if (id === null) throw refused('client certificate has no subject CN');
      const identity: AgentIdentity = {
        id,
        method: 'mtls',
        issuer: null,
        subject: typeof cn === 'string' ? cn : null,
        client_id: null,
        scopes: Object.freeze([]),
        claims: Object.freeze({}),
        on_behalf_of: null,
        spiffe_id: spiffe,
        cert_sha256: cert.fingerprint256,
      };
      return Object.freeze(identity);
    },
  };
}

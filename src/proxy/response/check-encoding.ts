/**
 * Stage `check-encoding`: an answer the gateway must read (to mask a credential, or to filter
 * an MCP list) must be in a form it can read. The upstream was asked for `accept-encoding:
 * identity`; one that compresses anyway with a coding Node decodes (gzip, deflate, br, zstd) is
 * decoded by the next stage. Anything else — an unknown coding, stacked codings, a repeated
 * header, or a Transfer-Encoding other than `chunked` (which undici does not undo, and which
 * would reach the agent as unlabelled compressed bytes) — is refused with 502
 * PC_UPSTREAM_BAD_ENCODING before anything is sent. The upstream's values are not echoed: they
 * could carry the secret.
 */
import { GatewayError } from '../../errors';
import { mustReadBody, type ResponseStage } from './upstream-response';

/** Content codings the decode-body stage undoes. */
export const DECODABLE_CODINGS: ReadonlySet<string> = new Set(['gzip', 'x-gzip', 'deflate', 'br', 'zstd']);

function refuse(what: string): never {
  throw new GatewayError('PC_UPSTREAM_BAD_ENCODING', `the upstream answered with ${what}, which the gateway cannot read to protect the credential`);
}

/** The answer's one content coding, lower-cased ('' for none or identity); throws for what cannot be read. */
export function contentCoding(value: string | string[] | undefined): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) refuse('more than one Content-Encoding header');
  const coding = value.trim().toLowerCase();
  if (coding === '' || coding === 'identity') return '';
  if (!DECODABLE_CODINGS.has(coding)) refuse('an unsupported Content-Encoding');
  return coding;
}

export const checkEncoding: ResponseStage = {
  name: 'check-encoding',
  run(r, ctx) {
    if (r.bodyless || !mustReadBody(ctx)) return;
    const te = r.upstream['transfer-encoding'];
    if (te !== undefined && (typeof te !== 'string' || te.trim().toLowerCase() !== 'chunked')) refuse('a Transfer-Encoding other than chunked');
    contentCoding(r.upstream['content-encoding']);
  },
};

/**
 * Serves MCP routes' Protected Resource Metadata (RFC 9728) on the agent listener, before the
 * pipeline: `GET` (or `HEAD`) of a metadata path answers the document, with no credential and no
 * audit record (it is public, the same for everyone, and changes nothing). Anything else under the
 * well-known path (another method, an unknown route, a Host or Origin the edge refuses) goes
 * through the pipeline like any call, and is refused and audited there.
 */
import type http from 'node:http';
import { judgeEdge } from '../edge/allow-list';
import { PRM_PREFIX } from '../identity/protected-resource';
import type { PipelineDeps } from './deps';

/** True when the request was a metadata fetch and has been answered. */
export function serveProtectedResourceMetadata(req: http.IncomingMessage, res: http.ServerResponse, deps: PipelineDeps): boolean {
  if (deps.protectedResources === null || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  const url = req.url ?? '';
  if (!url.startsWith(PRM_PREFIX)) return false;
  const q = url.indexOf('?');
  const document = deps.protectedResources.documentAt(q < 0 ? url : url.slice(0, q));
  if (document === null) return false;
  const { host, origin } = req.headersDistinct;
  if ((host && host.length > 1) || (origin && origin.length > 1) || judgeEdge(deps.edge, host, origin) !== null) return false;
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(document),
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : document);
  return true;
}

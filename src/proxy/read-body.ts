/** Reads the request body once, up to the configured cap. The same bytes are judged and forwarded. */
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors';

const EMPTY = Buffer.alloc(0);

/** True when the request framing announces a body. */
export function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/** Reads the whole body, refusing with PC_BODY_TOO_LARGE past `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (!hasBody(req)) return Promise.resolve(EMPTY);
  const declared = Number(req.headers['content-length'] ?? -1);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new GatewayError('PC_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds the ${limit}-byte limit`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.resume();
        finish(new GatewayError('PC_BODY_TOO_LARGE', `request body exceeds the ${limit}-byte limit`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onError = () => finish(new GatewayError('PC_BAD_REQUEST', 'the request body could not be read'));
    const onAborted = () => finish(new GatewayError('PC_BAD_REQUEST', 'the client aborted the request body'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  });
}

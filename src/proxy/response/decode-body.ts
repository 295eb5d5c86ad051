/**
 * Stage `decode-body`: an answer the gateway must read that arrives compressed (with a coding
 * check-encoding accepted) is decompressed within limits (bounded-decoder.ts) and sent to the
 * agent uncompressed, without Content-Encoding and Content-Length. Decoding rather than refusing:
 * frameworks and CDNs compress despite `accept-encoding: identity`, and refusing them would break
 * working integrations; Node's zlib decodes all four codings natively (docs/forwarding.md).
 */
import { BoundedDecoder } from './bounded-decoder';
import { contentCoding } from './check-encoding';
import { mustReadBody, type ResponseStage } from './upstream-response';

export const decodeBody: ResponseStage = {
  name: 'decode-body',
  run(r, ctx) {
    if (r.bodyless || !mustReadBody(ctx)) return;
    const coding = contentCoding(r.upstream['content-encoding']);
    if (coding === '') return;
    r.steps.push(new BoundedDecoder(coding));
    delete r.headers['content-encoding'];
    delete r.headers['content-length'];
  },
};

/**
 * Stage `mask-body`: credential values in the answer's body, after every other body transform,
 * so what is masked is exactly what the agent reads (a list the filter re-serialised, a body the
 * decoder decompressed). A small body of known length is masked whole with one write; anything
 * else (chunked, SSE, large) streams through the masker, which holds back only bytes that may
 * begin a secret. Event streams are also masked across `data:` lines and events.
 */
import { reportMasked, type ResponseStage } from './upstream-response';

/** Largest body (by Content-Length) masked whole rather than streamed. */
export const BUFFERED_MASK_LIMIT = 64 * 1024;

export const maskBody: ResponseStage = {
  name: 'mask-body',
  run(r, ctx, deps) {
    const secrets = ctx.secrets;
    if (secrets === null || r.bodyless) return;
    const masker = secrets.masker;
    const length = Number(r.upstream['content-length']);
    if (r.steps.length === 0 && length >= 0 && length <= BUFFERED_MASK_LIMIT) {
      r.whole = (body) => {
        if (masker.maskBody(body, r.sse)) reportMasked(r, ctx, deps);
      };
      return;
    }
    r.steps.push(masker.stream({ sse: r.sse }, () => reportMasked(r, ctx, deps)));
  },
};

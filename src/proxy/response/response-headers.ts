/**
 * Stage `response-headers`: the headers the agent may get. Hop-by-hop headers go; so does every
 * `x-portcullis-*` header, because only Portcullis speaks in them (an upstream cannot forge a
 * refusal or a decision id); the call's decision id is added.
 */
import { forwardableResponseHeaders } from '../headers';
import type { ResponseStage } from './upstream-response';

export const responseHeaders: ResponseStage = {
  name: 'response-headers',
  run(r, ctx) {
    const out = forwardableResponseHeaders(r.upstream);
    for (const k in out) if (k.startsWith('x-portcullis-')) delete out[k];
    out['x-portcullis-decision-id'] = ctx.id;
    r.headers = out;
  },
};

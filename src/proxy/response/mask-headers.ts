/**
 * Stage `mask-headers`: credential values in the answer's headers. A header whose name holds a
 * credential (in any of its encoded forms, in any case) is dropped, counted and logged: a name
 * cannot be masked without inventing another header. Values are masked in place.
 */
import { reportMasked, type ResponseStage } from './upstream-response';

export const maskHeaders: ResponseStage = {
  name: 'mask-headers',
  run(r, ctx, deps) {
    const secrets = ctx.secrets;
    if (secrets === null) return;
    const m = secrets.masker;
    const out = r.headers;
    let dropped = 0;
    let masked = false;
    for (const name in out) {
      if (m.nameHasSecret(name)) {
        delete out[name];
        dropped++;
        continue;
      }
      const v = out[name];
      if (typeof v === 'string') {
        const mv = m.maskString(v);
        if (mv !== v) masked = true;
        out[name] = mv;
      } else if (Array.isArray(v)) {
        out[name] = v.map((x) => {
          const mx = m.maskString(x);
          if (mx !== x) masked = true;
          return mx;
        });
      }
    }
    if (dropped > 0) {
      const route = ctx.route!.name;
      deps.metrics.headersDropped.inc({ route }, dropped);
      deps.log.warn({ decision_id: ctx.id, route, dropped }, 'dropped upstream response headers whose names held a credential');
    }
    if (masked || dropped > 0) reportMasked(r, ctx, deps);
  },
};

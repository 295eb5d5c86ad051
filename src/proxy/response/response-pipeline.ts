/**
 * The response half of the pipeline. The order of stages is the RESPONSE_PIPELINE array below
 * and nowhere else. Each stage runs once when the upstream's headers arrive, before anything is
 * sent to the agent; body stages add a transform, and the body flows through them in this
 * order. Masking comes last, so what is masked is exactly what the agent reads. A stage that
 * refuses the answer throws a GatewayError, which `localReply` turns into a 502 like any other
 * refusal. The outcome record is written once per call, after the body ended (pipeline.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CallContext } from '../context';
import type { PipelineDeps } from '../deps';
import type { ResponsePlan } from '../forward';
import { checkEncoding } from './check-encoding';
import { decodeBody } from './decode-body';
import { filterList } from './filter-list';
import { maskBody } from './mask-body';
import { maskHeaders } from './mask-headers';
import { mcpSessions } from './mcp-sessions';
import { responseHeaders } from './response-headers';
import { isEventStream } from '../../credential-injector/sse-data';
import { stageChannel, stageRefusedChannel, type StageMessage, type StageRefusedMessage } from '../../observability/channels';
import type { ResponseStage, UpstreamResponse } from './upstream-response';

/** The response stages, in order. Reordering them is a one-line change here. */
export const RESPONSE_PIPELINE: readonly ResponseStage[] = Object.freeze([
  responseHeaders,
  checkEncoding,
  decodeBody,
  maskHeaders,
  mcpSessions,
  filterList,
  maskBody,
]);

/** Runs the response stages on an upstream answer's head; the forwarder sends what they made. */
export function planResponse(ctx: CallContext, deps: PipelineDeps, status: number, upstream: IncomingHttpHeaders): ResponsePlan {
  const method = ctx.req.method;
  const r: UpstreamResponse = {
    status,
    upstream,
    headers: {},
    bodyless: method === 'HEAD' || status < 200 || status === 204 || status === 304,
    sse: isEventStream(upstream['content-type']),
    steps: [],
    whole: null,
    maskReported: false,
  };
  if (!stageChannel.hasSubscribers && !stageRefusedChannel.hasSubscribers) {
    for (const stage of RESPONSE_PIPELINE) stage.run(r, ctx, deps);
    return r;
  }
  for (const stage of RESPONSE_PIPELINE) {
    const t0 = process.hrtime.bigint();
    try {
      stage.run(r, ctx, deps);
    } catch (err) {
      stageRefusedChannel.publish({
        decisionId: ctx.id,
        half: 'response',
        stage: stage.name,
        code: (err as { code?: string }).code ?? 'PC_INTERNAL_ERROR',
      } satisfies StageRefusedMessage);
      throw err;
    }
    stageChannel.publish({
      decisionId: ctx.id,
      half: 'response',
      stage: stage.name,
      durationMs: Number(process.hrtime.bigint() - t0) / 1e6,
    } satisfies StageMessage);
  }
  return r;
}

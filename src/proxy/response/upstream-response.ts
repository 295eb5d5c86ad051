/**
 * The response half of the pipeline works on one UpstreamResponse: the upstream's status and
 * headers as received, the headers the agent will get, and the transforms its body will flow
 * through. Each response stage (response-pipeline.ts) reads and rewrites it once, when the
 * upstream's headers arrive and before anything is sent to the agent.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import type { CallContext } from '../context';
import type { PipelineDeps } from '../deps';

/** One upstream answer on its way to the agent. */
export interface UpstreamResponse {
  readonly status: number;
  /** As undici parsed them (lower-case names); never sent as they are. */
  readonly upstream: IncomingHttpHeaders;
  /** The headers the agent gets; set by `response-headers`, rewritten by later stages. */
  headers: OutgoingHttpHeaders;
  /** True when the answer has no body (HEAD, 1xx, 204, 304). */
  readonly bodyless: boolean;
  /** True when the body is `text/event-stream`. */
  readonly sse: boolean;
  /** Body transforms in stage order; the upstream's bytes enter the first, the agent reads the last. */
  readonly steps: Transform[];
  /** Set instead of a step for a small body of known length: masks it whole, in place. */
  whole: ((body: Buffer) => void) | null;
  /** True once this answer's masking was reported (metric and log, once per call). */
  maskReported: boolean;
}

/** A named response stage. Throwing a GatewayError refuses the answer before anything is sent. */
export interface ResponseStage {
  readonly name: string;
  run(r: UpstreamResponse, ctx: CallContext, deps: PipelineDeps): void;
}

/** Whether the answer's body must be readable by the gateway: a route with a credential to mask, or an MCP route. */
export function mustReadBody(ctx: CallContext): boolean {
  return ctx.secrets !== null || ctx.route?.kind === 'mcp';
}

/** Counts and logs, once per call, that a credential value was masked in the answer. */
export function reportMasked(r: UpstreamResponse, ctx: CallContext, deps: PipelineDeps): void {
  if (r.maskReported) return;
  r.maskReported = true;
  const route = ctx.route!.name;
  deps.metrics.secretsMasked.inc({ route });
  deps.log.warn({ decision_id: ctx.id, route }, 'the upstream echoed a credential; it was masked');
}

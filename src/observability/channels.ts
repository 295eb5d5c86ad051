/**
 * Diagnostics channels (node:diagnostics_channel), as undici publishes `undici:request:*`: tests
 * and operators can watch each call move through both pipeline halves without patching the
 * code. Messages carry names, ids and codes only — never the call's headers, body or context,
 * which hold the credential once it is attached. Publishing costs nothing while no one
 * subscribes (`hasSubscribers` is checked first).
 *
 *   portcullis:stage           {decisionId, half: 'request'|'response', stage, durationMs}  a stage ran to its end
 *   portcullis:stage:refused   {decisionId, half, stage, code}                             a stage refused the call
 *   portcullis:call:end        {decisionId, route, agent, status, code}                    the call was answered
 */
import { channel } from 'node:diagnostics_channel';

/** A stage ran to its end. */
export interface StageMessage {
  readonly decisionId: string;
  readonly half: 'request' | 'response';
  readonly stage: string;
  readonly durationMs: number;
}

/** A stage refused the call (threw a GatewayError, or failed). */
export interface StageRefusedMessage {
  readonly decisionId: string;
  readonly half: 'request' | 'response';
  readonly stage: string;
  readonly code: string;
}

/** A call was answered: by the upstream (its status), or by the gateway (its code). */
export interface CallEndMessage {
  readonly decisionId: string;
  readonly route: string | null;
  readonly agent: string | null;
  readonly status: number;
  readonly code: string | null;
}

export const stageChannel = channel('portcullis:stage');
export const stageRefusedChannel = channel('portcullis:stage:refused');
export const callEndChannel = channel('portcullis:call:end');

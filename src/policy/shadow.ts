/**
 * Shadow policies: a second policy judged on the same input as the enforcing one, whose verdict
 * is recorded beside the decision and never changes the call (docs/policy.md, Shadow policies).
 * It cannot throw into the call: any failure is a verdict with `error`, like the engine's own.
 */
import type { ShadowVerdict } from '../audit/record';
import type { Decision, PolicyInput, PolicySource } from './engine';

/** The shadow's verdict on `input`, or null while it has no policy in force. */
export function judgeInShadow(shadow: PolicySource, input: PolicyInput): ShadowVerdict | null {
  if (!shadow.ready) return null;
  const engine = shadow.current;
  let d: Decision;
  try {
    d = engine.decide(input);
  } catch (err) {
    d = { allow: false, reasons: ['policy error: the shadow policy failed'], error: String(err).slice(0, 500) };
  }
  return { revision: engine.revision, allow: d.allow, reasons: d.reasons, ...(d.error !== undefined ? { error: d.error } : {}) };
}

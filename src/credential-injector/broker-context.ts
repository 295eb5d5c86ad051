/**
 * What every credential provider gets from the gateway: a keyed fingerprint for the audit
 * record (never the value; keyed, so a guessable password cannot be tested against the trail),
 * the log, the credential_rotated record, and the two refusals a provider may make.
 */
import { createHmac } from 'node:crypto';
import { GatewayError } from '../errors';

/** Where providers log (no secret in any field). */
export interface BrokerLog {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

/** No log (unit tests and the benchmark's direct measurements). */
const SILENT: BrokerLog = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** A credential whose value changed while the gateway runs (a rotated secret file, a new client certificate). */
export interface RotationEvent {
  readonly credential: string;
  readonly type: string;
  /** What is fingerprinted of the new value (the attached header value, the certificate's SHA-256): never recorded itself. */
  readonly value: string;
  readonly previous: string;
  /** How long the previous value stays masked (s); null when it is not a secret that can be echoed. */
  readonly graceS: number | null;
}

/** The facts of a credential_rotated audit record (src/audit/record.ts). */
export interface RotationFacts {
  readonly credential: string;
  readonly credential_type: string;
  readonly fingerprint: string;
  readonly previous_fingerprint: string;
  readonly grace_s: number | null;
}

/** Shared by the providers of one gateway. */
export interface BrokerContext {
  /** The gateway's log, for what an operator must see and the agent must not (a token endpoint's error body, a rotation). */
  readonly log: BrokerLog;
  /** Records a rotation (a credential_rotated audit record naming the values by fingerprint). */
  rotated(event: RotationEvent): void;
  /** `hmac:<16 hex>` of a value under the gateway's fingerprint key: equal values, equal fingerprints. */
  fingerprint(value: string): string;
  /** The refusal for a decision asking a credential for more than it can grant (PC_POLICY_ERROR). */
  cannotGrant(credential: string, why: string): GatewayError;
  /** The refusal for a credential that cannot be obtained now (PC_CREDENTIAL_UNAVAILABLE). */
  unavailable(credential: string, why: string): GatewayError;
}

/** The text whose signature is the fingerprint key. */
const FINGERPRINT_KEY_TEXT = 'portcullis credential fingerprint key v1\n';

/**
 * The context over a fingerprint key, given later (`setSigner`, before the first call): the
 * gateway derives it from its checkpoint signing key, whose Ed25519 signature of a fixed text is
 * deterministic and secret without the private key, so fingerprints stay comparable across
 * restarts and between credential_rotated and decision records.
 */
export function brokerContext(
  log: BrokerLog = SILENT,
  onRotated: (facts: RotationFacts) => void = () => undefined,
): BrokerContext & { setSigner(signer: { sign(text: string): string }): void } {
  let key: Buffer | null = null;
  // Rotations seen before the key is loaded (the first moments of a start) wait for it.
  const early: RotationEvent[] = [];
  const fingerprint = (value: string) => {
    if (key === null) throw new Error('credential fingerprint asked for before the signing key was loaded');
    return `hmac:${createHmac('sha256', key).update(value, 'utf8').digest('hex').slice(0, 16)}`;
  };
  const report = (e: RotationEvent) =>
    onRotated({
      credential: e.credential,
      credential_type: e.type,
      fingerprint: fingerprint(e.value),
      previous_fingerprint: fingerprint(e.previous),
      grace_s: e.graceS,
    });
  return {
    log,
    setSigner(signer) {
      key = createHmac('sha256', 'portcullis').update(signer.sign(FINGERPRINT_KEY_TEXT)).digest();
      for (const e of early.splice(0)) report(e);
    },
    fingerprint,
    rotated(event) {
      if (key === null) early.push(event);
      else report(event);
    },
    cannotGrant: (credential, why) =>
      new GatewayError('PC_POLICY_ERROR', 'the policy asked for a credential the route cannot grant', [`credential ${credential}: ${why}`]),
    unavailable: (credential, why) =>
      new GatewayError('PC_CREDENTIAL_UNAVAILABLE', 'the upstream credential could not be obtained; nothing was forwarded', [
        `credential ${credential}: ${why}`,
      ]),
  };
}

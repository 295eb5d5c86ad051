/**
 * What every credential provider gets from the gateway: a keyed fingerprint for the audit
 * record (never the value; keyed, so a guessable password cannot be tested against the trail),
 * the log, and the two refusals a provider may make.
 */
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { GatewayError } from '../errors';

/** Shared by the providers of one gateway. */
export interface BrokerContext {
  /** `hmac:<16 hex>` of a value under the gateway's fingerprint key: equal values, equal fingerprints. */
  fingerprint(value: string): string;
  /** The refusal for a decision asking a credential for more than it can grant (PC_POLICY_ERROR). */
  cannotGrant(credential: string, why: string): GatewayError;
  /** The refusal for a credential that cannot be obtained now (PC_CREDENTIAL_UNAVAILABLE). */
  unavailable(credential: string, why: string): GatewayError;
  /** The gateway's log, for what an operator must see and the agent must not (a token endpoint's error body); absent: nothing is logged. */
  readonly log?: Logger;
}

/** The text whose signature is the fingerprint key. */
const FINGERPRINT_KEY_TEXT = 'portcullis credential fingerprint key v1\n';

/**
 * The context over a fingerprint key, given later (`setSigner`, before the first call): the
 * gateway derives it from its checkpoint signing key, whose Ed25519 signature of a fixed text is
 * deterministic and secret without the private key, so fingerprints stay comparable across
 * restarts and between credential_rotated and decision records.
 */
export function brokerContext(log?: Logger): BrokerContext & { setSigner(signer: { sign(text: string): string }): void } {
  let key: Buffer | null = null;
  return {
    ...(log !== undefined ? { log } : {}),
    setSigner(signer) {
      key = createHmac('sha256', 'portcullis').update(signer.sign(FINGERPRINT_KEY_TEXT)).digest();
    },
    fingerprint(value) {
      if (key === null) throw new Error('credential fingerprint asked for before the signing key was loaded');
      return `hmac:${createHmac('sha256', key).update(value, 'utf8').digest('hex').slice(0, 16)}`;
    },
    cannotGrant: (credential, why) =>
      new GatewayError('PC_POLICY_ERROR', 'the policy asked for a credential the route cannot grant', [`credential ${credential}: ${why}`]),
    unavailable: (credential, why) =>
      new GatewayError('PC_CREDENTIAL_UNAVAILABLE', 'the upstream credential could not be obtained; nothing was forwarded', [
        `credential ${credential}: ${why}`,
      ]),
  };
}

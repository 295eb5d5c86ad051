/**
 * Static secrets (`bearer`, `header`, `basic`): a value read from the environment or a file,
 * attached as one header. The attachment is built once, so a call costs one header set and no
 * allocation.
 */
import type { Credential } from '../config/types';
import { bindCredential } from './injector';
import type { BrokerContext } from './broker-context';
import type { Attachment, CredentialHealth, CredentialProvider, OutgoingRequest } from './provider';

/** The static credential types. */
export type StaticCredential = Extract<Credential, { type: 'bearer' | 'header' | 'basic' }>;

/** A provider for a static secret. */
export function staticProvider(credential: StaticCredential, broker: BrokerContext): CredentialProvider {
  const binding = bindCredential(credential);
  let cacheHits = 0;
  // Built at the first call: the fingerprint key is the audit signing key's, loaded after the routes.
  let attachment: Attachment | null = null;
  const build = (): Attachment => {
    const probe: Record<string, string> = {};
    binding.attach(probe);
    return Object.freeze({
      apply: (request: OutgoingRequest) => binding.attach(request.headers),
      scopes: null,
      fingerprint: broker.fingerprint(probe[binding.header]),
      secrets: binding,
    });
  };
  return {
    name: credential.name,
    type: credential.type,
    needsCaller: false,
    obtain(call) {
      if (call.scopes !== null) throw broker.cannotGrant(credential.name, 'it is a static secret with no scopes');
      cacheHits++;
      attachment ??= build();
      return attachment;
    },
    secrets: () => binding,
    health: (): CredentialHealth => ({
      name: credential.name,
      type: credential.type,
      ok: true,
      fetches: 1,
      cacheHits,
      failures: 0,
      expiresInS: null,
      lastError: null,
    }),
  };
}

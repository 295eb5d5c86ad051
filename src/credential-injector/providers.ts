/**
 * One provider per configured credential, by type: the one place a new credential type is
 * added (a file beside this one, and a case here).
 */
import type { Credential } from '../config/types';
import type { BrokerContext } from './broker-context';
import type { CredentialProvider } from './provider';
import { mtlsProvider } from './mtls';
import { staticProvider } from './static';

/** Builds the provider of a credential. */
export function createProvider(credential: Credential, broker: BrokerContext): CredentialProvider {
  switch (credential.type) {
    case 'bearer':
    case 'header':
    case 'basic':
      return staticProvider(credential, broker);
    case 'mtls':
      return mtlsProvider(credential, broker);
  }
}

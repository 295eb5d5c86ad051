/**
 * One provider per configured credential, by type: the one place a new credential type is
 * added (a file beside this one, and a case here).
 */
import type { Credential } from '../config/types';
import { awsSigV4Provider } from './aws-sigv4';
import type { BrokerContext } from './broker-context';
import { type ClientCredentialsProvider, clientCredentialsProvider } from './oauth-client-credentials';
import { tokenExchangeProvider } from './oauth-token-exchange';
import type { CredentialProvider } from './provider';
import { mtlsProvider } from './mtls';
import { staticProvider } from './static';

/**
 * Builds the provider of a credential. `providerOf` gives the one provider of another
 * credential (a token exchange's actor), so a credential has one token cache however it is used.
 */
export function createProvider(credential: Credential, broker: BrokerContext, providerOf?: (c: Credential) => CredentialProvider): CredentialProvider {
  switch (credential.type) {
    case 'bearer':
    case 'header':
    case 'basic':
      return staticProvider(credential, broker);
    case 'oauth2_client_credentials':
      return clientCredentialsProvider(credential, broker);
    case 'oauth2_token_exchange': {
      const a = credential.actor;
      const actor = a === null ? null : ((providerOf?.(a) ?? clientCredentialsProvider(a, broker)) as ClientCredentialsProvider);
      return tokenExchangeProvider(credential, broker, actor);
    }
    case 'aws_sigv4':
      return awsSigV4Provider(credential, broker);
    case 'mtls':
      return mtlsProvider(credential, broker);
  }
}

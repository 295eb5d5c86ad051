/**
 * The agent-key method: `Authorization: Bearer <key>`. Keys are never stored: the config holds
 * their SHA-256, compared in constant time against every agent so the time taken does not
 * depend on which agent (if any) matched.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import type { AgentConfig } from '../config/types';
import { type AgentIdentity, type IdentityMethod, plainIdentity } from './identity-method';

/** Builds the agent-key method for the configured agents. */
export function apiKeyMethod(agents: readonly AgentConfig[]): IdentityMethod {
  const table = agents.map((a) => ({ hash: a.keySha256, identity: plainIdentity(a.id, 'api_key') }));
  return {
    name: 'api_key',
    identify({ bearer }) {
      const presented = hash('sha256', bearer, 'buffer');
      let found: AgentIdentity | null = null;
      for (const agent of table) {
        if (timingSafeEqual(presented, agent.hash) && found === null) found = agent.identity;
      }
      return found;
    },
  };
}

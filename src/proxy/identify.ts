/**
 * Identifies the calling agent from `Authorization: Bearer <key>`. Keys are never stored: the
 * config holds their SHA-256, compared in constant time against every agent so the time taken
 * does not depend on which agent (if any) matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AgentConfig } from '../config/types';
import { GatewayError } from '../errors';

/** Resolves agent keys to agent ids. */
export interface AgentIdentifier {
  /**
   * Returns the agent id, or null when no Authorization header was sent. Throws
   * PC_BAD_AUTHORIZATION for a malformed header and PC_UNKNOWN_AGENT for a key no agent has.
   */
  identify(authorization: string | undefined): string | null;
}

/** Builds the identifier for the configured agents. */
export function createAgentIdentifier(agents: readonly AgentConfig[]): AgentIdentifier {
  const table = agents.map((a) => ({ id: a.id, hash: a.keySha256 }));
  return {
    identify(authorization) {
      if (authorization === undefined) return null;
      const m = /^Bearer +([\x21-\x7e]{1,4096}) *$/i.exec(authorization);
      if (!m) throw new GatewayError('PC_BAD_AUTHORIZATION', 'Authorization must be "Bearer <agent key>"');
      const presented = createHash('sha256').update(m[1]).digest();
      let found: string | null = null;
      for (const agent of table) {
        if (timingSafeEqual(presented, agent.hash) && found === null) found = agent.id;
      }
      if (found === null) throw new GatewayError('PC_UNKNOWN_AGENT', 'the agent key is not recognised');
      return found;
    },
  };
}

/** What the stages of both pipeline halves use, built once per configuration (src/gateway.ts). */
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/writer';
import type { EdgeAllowList } from '../edge/allow-list';
import type { AgentIdentifier } from '../identity/identifier';
import type { ProtectedResources } from '../identity/protected-resource';
import type { SessionTable } from '../mcp/sessions';
import type { Metrics } from '../observability/metrics';
import type { PolicySource } from '../policy/engine';
import type { MemoryGuard } from './memory-guard';
import type { RouteRuntime } from './route-runtime';
import type { RouteTable } from './route-table';

/** Everything the stages use, built once per configuration; each part is an interface, so a second implementation is a new file. */
export interface PipelineDeps {
  /** The agent listener's Host and Origin allow-list (G20). */
  readonly edge: EdgeAllowList;
  /** Each route's identifier: the identity methods it accepts, its resource and scopes, by route name. */
  readonly identifiers: ReadonlyMap<string, AgentIdentifier>;
  /** Every method, nothing required: names the agent in the record of a call no route serves (its answer does not depend on it). */
  readonly unroutedIdentifier: AgentIdentifier;
  /** MCP routes as OAuth protected resources (RFC 9728), with identity.jwt; null without. */
  readonly protectedResources: ProtectedResources | null;
  readonly routes: RouteTable<RouteRuntime>;
  readonly maxBodyBytes: number;
  readonly policy: PolicySource;
  readonly audit: AuditLog;
  /** MCP sessions bound to the agents that created them. */
  readonly sessions: SessionTable;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Says when memory is short and new calls must be refused. */
  readonly memory: Pick<MemoryGuard, 'pressed'>;
}

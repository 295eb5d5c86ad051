/**
 * The Portcullis target: the real gateway, configured the way a deployment would be. One
 * agent identified by its key's SHA-256, a REST route and an MCP route (kind mcp) to the same
 * upstream, both with a bearer credential read from the environment, the Rego policy in
 * bench/policy compiled by the real OPA CLI, and an audit trail with the durability given in
 * BENCH_DURABILITY (strict: fdatasync before forwarding). With BENCH_JWKS_URI set (the JWT
 * workloads), agents may also present an access token of bench/jwt-issuer.ts (`identity.jwt`).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../src/config/load';
import { startGateway } from '../src/gateway';
import { createLogger } from '../src/observability/logger';
import { serveChild } from './child';
import { JWT_ALGORITHMS, JWT_AUDIENCE, JWT_ISSUER } from './jwt-issuer';
import { MCP_PATH } from './mcp-server';

/** Asks a gateway child how far its audit trail got. */
export interface StatsRequest {
  readonly type: 'stats';
}

/** A gateway child's answer to StatsRequest. */
export interface StatsReply {
  readonly type: 'stats';
  /** Sequence number of the last durable audit record. */
  readonly auditSeq: number;
}

/** Route prefix the benchmark requests go through; also the upstream path, so URLs match across targets. */
export const ROUTE_PREFIX = '/api/';
/** The MCP route (kind mcp); its prefix is the upstream's MCP endpoint path. */
export const MCP_ROUTE = 'bench-mcp';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** The gateway's portcullis.yaml for the benchmark. */
function configYaml(upstream: string, agentKey: string, durability: string, policyDir: string, jwksUri: string | undefined): string {
  // The agent key method is asked first: a token costs a failed key lookup too, as in a deployment.
  const identity = jwksUri
    ? `identity:
  jwt:
    issuer: ${JWT_ISSUER}
    audience: ${JWT_AUDIENCE}
    jwks_uri: ${jwksUri}
    algorithms: [${JWT_ALGORITHMS.join(', ')}]
`
    : '';
  return `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ${JSON.stringify(policyDir)}, watch: false }
audit: { path: ./audit, durability: ${durability} }
log: { level: warn }
credentials:
  upstream-token: { type: bearer, env: BENCH_UPSTREAM_TOKEN }
agents:
  - id: bench-bot
    key_sha256: "${createHash('sha256').update(agentKey).digest('hex')}"
routes:
  - name: bench
    prefix: ${ROUTE_PREFIX}
    upstream: ${upstream}${ROUTE_PREFIX}
    credential: upstream-token
  - name: ${MCP_ROUTE}
    kind: mcp
    prefix: ${MCP_PATH}
    upstream: ${upstream}${MCP_PATH}
    credential: upstream-token
${identity}`;
}

async function main(): Promise<void> {
  const dir = required('BENCH_WORK_DIR');
  mkdirSync(dir, { recursive: true });
  // dist/bench/gateway.js → <repo>/bench/policy (tsc does not copy .rego files).
  const policyDir = path.resolve(__dirname, '..', '..', 'bench', 'policy');
  const file = path.join(dir, 'portcullis.yaml');
  const yaml = configYaml(required('BENCH_UPSTREAM_URL'), required('BENCH_AGENT_KEY'), required('BENCH_DURABILITY'), policyDir, process.env.BENCH_JWKS_URI);
  writeFileSync(file, yaml);
  const config = parseConfig(yaml, file);
  const gateway = await startGateway(config, { logger: createLogger('warn'), drainMs: 2000 });
  process.on('message', (m: StatsRequest) => {
    if (m?.type === 'stats') process.send?.({ type: 'stats', auditSeq: gateway.audit.lastSeq } satisfies StatsReply);
  });
  serveChild(gateway.url, () => gateway.close());
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

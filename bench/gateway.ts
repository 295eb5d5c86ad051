/**
 * The Portcullis target: the real gateway, configured the way a deployment would be. One
 * agent identified by its key's SHA-256, a REST route and an MCP route (kind mcp) to the same
 * upstream, both with a bearer credential read from the environment, the Rego policy in
 * bench/policy compiled by the real OPA CLI, and an audit trail with the durability given in
 * BENCH_DURABILITY (strict: fdatasync before forwarding). With BENCH_JWKS_URI set (the JWT
 * workloads), agents may also present an access token of bench/jwt-issuer.ts (`identity.jwt`).
 * With BENCH_CRED_TYPES set (the credential workloads), one more REST route per credential type
 * listed, to the same upstream path, each holding a credential of that type: an OAuth client
 * credentials token and an exchanged token from bench/token-server.ts (BENCH_TOKEN_URL), or
 * SigV4 keys from the environment (CRED_ROUTES).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import type { Registry } from 'prom-client';
import { parseConfig } from '../src/config/load';
import { startGateway } from '../src/gateway';
import { createLogger } from '../src/observability/logger';
import { serveChild } from './child';
import { JWT_ALGORITHMS, JWT_AUDIENCE, JWT_ISSUER } from './jwt-issuer';
import { MCP_PATH } from './mcp-server';
import { CLIENT_ID } from './token-server';

/** Asks a gateway child how far its audit trail got. */
export interface StatsRequest {
  readonly type: 'stats';
}

/**
 * Asks a gateway child where its memory stands (bench/soak.ts). With `collect` and the child
 * started with --expose-gc, a full collection runs after the first reading and the heap is
 * read again: what is retained, as opposed to garbage not yet collected.
 */
export interface MemoryRequest {
  readonly type: 'memory';
  readonly collect: boolean;
}

/** A gateway child's answer to MemoryRequest. Bytes. */
export interface MemoryReply {
  readonly type: 'memory';
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** heapUsed right after a full collection; null when none was asked for or gc is not exposed. */
  readonly retainedHeap: number | null;
  /** Live MCP sessions in the gateway's table. */
  readonly mcpSessions: number;
  /** V8's heap spaces (new, old, large objects, code...): size reserved and used, bytes, at the first reading. */
  readonly spaces: Readonly<Record<string, { readonly size: number; readonly used: number }>>;
}

/** A gateway child's answer to StatsRequest. */
export interface StatsReply {
  readonly type: 'stats';
  /** Sequence number of the last durable audit record. */
  readonly auditSeq: number;
  /** Per credential: its provider's counters (token requests, calls served from the cache, failures), from the gateway's metrics. */
  readonly credentials: Readonly<Record<string, CredentialCounters>>;
}

/** What a gateway's metrics say of one credential. */
export interface CredentialCounters {
  readonly type: string;
  readonly fetches: number;
  readonly cacheHits: number;
  readonly failures: number;
}

/** The portcullis_credential_* counters, per credential. */
async function credentialCounters(registry: Registry): Promise<Record<string, CredentialCounters>> {
  const out: Record<string, { type: string; fetches: number; cacheHits: number; failures: number }> = {};
  const field = {
    portcullis_credential_fetches_total: 'fetches',
    portcullis_credential_cache_hits_total: 'cacheHits',
    portcullis_credential_failures_total: 'failures',
  } as const;
  for (const metric of await registry.getMetricsAsJSON()) {
    const key = field[metric.name as keyof typeof field];
    if (!key) continue;
    for (const v of metric.values) {
      const name = String(v.labels.credential);
      out[name] ??= { type: String(v.labels.type), fetches: 0, cacheHits: 0, failures: 0 };
      out[name][key] = v.value;
    }
  }
  return out;
}

/** Route prefix the benchmark requests go through; also the upstream path, so URLs match across targets. */
export const ROUTE_PREFIX = '/api/';
/** The MCP route (kind mcp); its prefix is the upstream's MCP endpoint path. */
export const MCP_ROUTE = 'bench-mcp';

/** The credential types of the credential workloads, beside the static bearer of the routes above. */
export const CRED_TYPES = ['oauth2_client_credentials', 'oauth2_token_exchange', 'aws_sigv4'] as const;
/** One of CRED_TYPES. */
export type CredType = (typeof CRED_TYPES)[number];

/** Per credential type: its route's name and prefix (the upstream path is ROUTE_PREFIX for all). */
export const CRED_ROUTES: Readonly<Record<CredType, { readonly route: string; readonly prefix: string }>> = {
  oauth2_client_credentials: { route: 'bench-oauth', prefix: '/cred-oauth/' },
  oauth2_token_exchange: { route: 'bench-exchange', prefix: '/cred-exchange/' },
  aws_sigv4: { route: 'bench-sigv4', prefix: '/cred-sigv4/' },
};

/** The SigV4 route's signing scope and key id (the key id is what the upstream checks in Credential=). */
export const SIGV4 = { service: 's3', region: 'us-east-1', accessKeyId: 'AKIABENCHNOTASECRET0' } as const;
/** The scope the OAuth credentials ask for. */
export const OAUTH_SCOPE = 'items:write';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** The credentials and routes of the credential types in `types` (the credential workloads). */
function credentialYaml(upstream: string, types: readonly CredType[], tokenUrl: string | undefined): { credentials: string; routes: string } {
  const oauth = (type: string, extra = '') => {
    if (!tokenUrl) throw new Error('BENCH_TOKEN_URL is not set');
    return `{ type: ${type}, token_url: ${tokenUrl}, client_id: ${CLIENT_ID}, auth_method: client_secret_post, client_secret_env: BENCH_CLIENT_SECRET, scope: [${OAUTH_SCOPE}]${extra} }`;
  };
  const entries: Record<CredType, () => string> = {
    oauth2_client_credentials: () => oauth('oauth2_client_credentials'),
    // The gateway's own client-credentials token as the actor: the upstream sees the user and the agent.
    oauth2_token_exchange: () =>
      oauth(
        'oauth2_token_exchange',
        `, audience: bench-upstream${types.includes('oauth2_client_credentials') ? ', actor: cred-oauth2_client_credentials' : ''}`,
      ),
    aws_sigv4: () =>
      `{ type: aws_sigv4, service: ${SIGV4.service}, region: ${SIGV4.region}, access_key_id_env: BENCH_AWS_ACCESS_KEY_ID, secret_access_key_env: BENCH_AWS_SECRET_ACCESS_KEY }`,
  };
  return {
    credentials: types.map((t) => `  cred-${t}: ${entries[t]()}\n`).join(''),
    routes: types
      .map(
        (t) => `  - name: ${CRED_ROUTES[t].route}
    prefix: ${CRED_ROUTES[t].prefix}
    upstream: ${upstream}${ROUTE_PREFIX}
    credential: cred-${t}
`,
      )
      .join(''),
  };
}

/** The gateway's portcullis.yaml for the benchmark (also read by bench/cred-obtain.ts). */
export function configYaml(
  upstream: string,
  agentKey: string,
  durability: string,
  policyDir: string,
  jwksUri: string | undefined,
  credTypes: readonly CredType[],
  tokenUrl: string | undefined,
): string {
  const cred = credentialYaml(upstream, credTypes, tokenUrl);
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
${cred.credentials}agents:
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
${cred.routes}${identity}`;
}

function memoryReply(collect: boolean, mcpSessions: number): MemoryReply {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((x) => [x.space_name, { size: x.space_size, used: x.space_used_size }]));
  const gc = (globalThis as { gc?: () => void }).gc;
  let retainedHeap: number | null = null;
  if (collect && gc) {
    gc();
    retainedHeap = process.memoryUsage().heapUsed;
  }
  return {
    type: 'memory',
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    retainedHeap,
    mcpSessions,
    spaces,
  };
}

async function main(): Promise<void> {
  const dir = required('BENCH_WORK_DIR');
  mkdirSync(dir, { recursive: true });
  // dist/bench/gateway.js → <repo>/bench/policy (tsc does not copy .rego files).
  const policyDir = path.resolve(__dirname, '..', '..', 'bench', 'policy');
  const file = path.join(dir, 'portcullis.yaml');
  const credTypes = (process.env.BENCH_CRED_TYPES || '').split(',').filter(Boolean) as CredType[];
  if (!credTypes.every((t) => CRED_TYPES.includes(t))) throw new Error(`BENCH_CRED_TYPES lists an unknown type: ${process.env.BENCH_CRED_TYPES}`);
  const yaml = configYaml(
    required('BENCH_UPSTREAM_URL'),
    required('BENCH_AGENT_KEY'),
    required('BENCH_DURABILITY'),
    policyDir,
    process.env.BENCH_JWKS_URI,
    credTypes,
    process.env.BENCH_TOKEN_URL,
  );
  writeFileSync(file, yaml);
  const config = parseConfig(yaml, file);
  const gateway = await startGateway(config, { logger: createLogger('warn'), drainMs: 2000 });
  process.on('message', (m: StatsRequest | MemoryRequest) => {
    if (m?.type === 'memory') return void process.send?.(memoryReply(m.collect, gateway.mcpSessions.size) satisfies MemoryReply);
    if (m?.type !== 'stats') return;
    void credentialCounters(gateway.metrics.registry).then((credentials) =>
      process.send?.({ type: 'stats', auditSeq: gateway.audit.lastSeq, credentials } satisfies StatsReply),
    );
  });
  serveChild(gateway.url, () => gateway.close());
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

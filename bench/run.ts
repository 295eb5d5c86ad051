/**
 * `npm run bench`: measures Portcullis side by side with the upstream alone ("direct") and with
 * a bare keep-alive http-proxy, in one run, and checks the issue's two targets: at least the
 * bare proxy's throughput, and at most 1 ms added to p50 over direct. Two REST workloads and
 * one MCP workload (a 1 KB `tools/call` in an initialized session, bench/mcp-server.ts): the
 * gateway judges the MCP call on its tool and arguments (bench/policy/mcp.rego).
 *
 * Each target and the load generator run in their own processes (bench/child.ts). On a machine
 * with two or more CPUs the load generator is pinned to CPU 0 and the upstream and the proxy
 * under test share CPU 1, so what is measured is the proxy's cost, not a fight with autocannon
 * for a core. Before any load, every target is checked by hand: 200s for the workload's
 * requests, the credential injected by Portcullis only, and Portcullis denying what the policy
 * forbids (and, for the JWT workloads, refusing a forged token). During the runs, any error or non-2xx answer, or a target dying, stops the benchmark
 * with a non-zero exit and no results file.
 *
 * Settings (environment):
 *   BENCH_DURATION         seconds measured per run (5)
 *   BENCH_WARMUP           seconds of unmeasured load before each run (1)
 *   BENCH_PRIME            seconds of each workload every target gets once at start-up, so the
 *                          first runs do not pay for JIT compilation (1)
 *   BENCH_CONNECTIONS      connection counts (1,16,64): 16 and 64 measure capacity, 1 the
 *                          latency a proxy adds when nothing queues
 *   BENCH_WORKLOADS        which workload groups: http, mcp, jwt, cred, comma-separated (http,mcp);
 *                          `npm run bench:mcp` is BENCH_WORKLOADS=mcp. jwt is the REST GET
 *                          authenticated by an ES256 and by an RS256 access token instead of the
 *                          agent key, beside the agent-key GET (added when http is not listed),
 *                          judged on the gateway CPU a token adds per call (at most
 *                          MAX_JWT_ADDED_CPU_US); `npm run bench:jwt` is BENCH_WORKLOADS=jwt.
 *                          Not in the default: it adds about 2½ minutes, for a figure that
 *                          only changes when the identity code or jose does. cred is the 1 KB
 *                          POST through Portcullis on one route per credential type (a cached
 *                          OAuth client-credentials token, a cached exchanged token, SigV4
 *                          signing) beside the same POST on the static-bearer route (added when
 *                          http is not listed), judged on the gateway CPU each type adds per
 *                          call (MAX_CACHED_TOKEN_ADDED_CPU_US, MAX_SIGV4_ADDED_CPU_US); Portcullis
 *                          targets only (direct and the bare proxy hold no credentials: they
 *                          run the static POST only, as a reference); `npm run bench:cred`
 *                          is BENCH_WORKLOADS=cred
 *   BENCH_CRED_TYPES       with cred: which credential types, comma-separated, of oauth
 *                          (oauth2_client_credentials), exchange (oauth2_token_exchange), sigv4
 *                          (aws_sigv4) (all); a type the config schema does not know is skipped,
 *                          with a message
 *   BENCH_ROUNDS           how many times every workload is measured, interleaved (1); the
 *                          credential verdicts take the median difference over the rounds
 *   BENCH_RELAXED=0        skip the gateway with relaxed audit durability
 *   BENCH_PIN=0            do not pin processes to CPUs
 *   BENCH_CPU_PROF=1       write V8 CPU profiles of the gateways to bench/results/profiles/
 *   BENCH_PERF=1           record on-CPU profiles of the bare proxy and the gateways with Linux
 *                          perf, every thread and the kernel included, to
 *                          bench/results/profiles/TARGET.perf.data (bench/perf-record.ts)
 *   BENCH_GATEWAY_NODE_FLAGS  extra Node flags for the two gateways only, space-separated
 *   BENCH_KEEP=1           keep the work directory (configs, audit trails)
 *   BENCH_MAX_FOREIGN_CPU  cores other processes may use during a run before it is repeated (0.1)
 *   BENCH_RETRIES          how many times a disturbed run is repeated (2)
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canPin, startChild, type Child } from './child';
import { assertPerfUsable, PERF_NODE_FLAGS, recordOnCpu } from './perf-record';
import { cpuShareBetween, processCpuSeconds, sampleCpu } from './cpu-usage';
import { CRED_ROUTES, CRED_TYPES, type CredType, type CredentialCounters, ROUTE_PREFIX, SIGV4, type StatsReply } from './gateway';
import { CONFIG_SCHEMA } from '../src/config/schema';
import type { LoadJob, LoadReply, LoadResult } from './load';
import { JWT_ALGORITHMS, type JwtAlgorithm, type JwtIssuer, startJwtIssuer } from './jwt-issuer';
import { MCP_PATH, type McpStatsReply } from './mcp-server';
import {
  compare,
  type CredentialComparison,
  compareCredentials,
  describeEnvironment,
  failuresOf,
  formatComparisons,
  formatCredentialComparisons,
  formatCredentialVerdicts,
  formatRows,
  formatVerdicts,
  judge,
  speedChecks,
  formatSpeedChecks,
  MAX_CACHED_TOKEN_ADDED_CPU_US,
  MAX_SIGV4_ADDED_CPU_US,
  TARGETS,
  type Row,
  type TargetName,
} from './report';
import { listSetting, numberSetting, workDirectory } from './settings';
import { CLIENT_SECRET, type Grant, startTokenServer, type TokenServer } from './token-server';
import { type AuthorizationSeen, INSPECT_HEADER, SAW_CREDENTIAL_HEADER, sha256Hex } from './upstream';

const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
const AGENT_KEY = 'bench-agent-key-not-a-secret';
/** The agent the policy allows; also the `sub` of the JWT workloads' tokens. */
const AGENT_ID = 'bench-bot';
const UPSTREAM_TOKEN = 'bench-upstream-token-not-a-secret';
const PATH = `${ROUTE_PREFIX}items`;
const TMPFS_MAGIC = 0x01021994;
/** The MCP revision the benchmark's client speaks. */
const MCP_VERSION = '2025-11-25';
/** autocannon replaces this in a body with a fresh id of FRESH_ID_BYTES characters on every request (hyperid, fixed length). */
const FRESH_ID = '[<id>]';
const FRESH_ID_BYTES = 33;

/** A request shape the benchmark sends. */
interface Workload {
  readonly name: string;
  readonly group: Group;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string;
  /** The agent presents an access token signed with this algorithm instead of its agent key. */
  readonly jwt?: JwtAlgorithm;
  /** The credential type of the route (CRED_ROUTES); absent: the static bearer of the REST or MCP route. */
  readonly cred?: CredType;
  /** Measured on the Portcullis targets only (the others hold no credentials). */
  readonly portcullisOnly?: boolean;
}

const ALL_GROUPS = ['http', 'mcp', 'jwt', 'cred'] as const;
type Group = (typeof ALL_GROUPS)[number];
const DEFAULT_GROUPS: readonly Group[] = ['http', 'mcp'];

/** A JSON body of exactly `bytes` bytes that the bench policy allows. */
function noteBody(bytes: number): string {
  const empty = JSON.stringify({ kind: 'note', text: '' });
  return JSON.stringify({ kind: 'note', text: 'x'.repeat(bytes - empty.length) });
}

/** A `tools/call` of echo; autocannon puts a fresh id in place of FRESH_ID on every request. */
function mcpCall(message: string): string {
  return JSON.stringify({ jsonrpc: '2.0', id: FRESH_ID, method: 'tools/call', params: { name: 'echo', arguments: { message } } });
}

/** Length of the message that makes the MCP call exactly 1024 bytes once its id is in place. */
const MCP_MESSAGE_BYTES = 1024 - (FRESH_ID_BYTES - FRESH_ID.length) - mcpCall('').length;
// JSON-RPC ids must not repeat within a session while calls are in flight, hence fresh ids.
const MCP_CALL: Workload = { name: 'MCP call 1KB', group: 'mcp', method: 'POST', path: MCP_PATH, body: mcpCall('x'.repeat(MCP_MESSAGE_BYTES)) };

/** The agent-key GET: the REST baseline, and the one the JWT workloads are set against. */
const GET: Workload = { name: 'GET', group: 'http', method: 'GET', path: PATH };
/** The same GET, the agent identified by an access token (the same policy allows both). */
const JWT_GETS: readonly Workload[] = JWT_ALGORITHMS.map((alg) => ({ name: `GET JWT ${alg}`, group: 'jwt', method: 'GET', path: PATH, jwt: alg }));

const NOTE_1KB = noteBody(1024);
/** The static-bearer POST: a REST workload, and the one the credential workloads are set against. */
const POST: Workload = { name: 'POST 1KB', group: 'http', method: 'POST', path: PATH, body: NOTE_1KB };

/** BENCH_CRED_TYPES's short names. */
const CRED_SHORT: Readonly<Record<string, CredType>> = { oauth: 'oauth2_client_credentials', exchange: 'oauth2_token_exchange', sigv4: 'aws_sigv4' };
const CRED_LABEL: Readonly<Record<CredType, string>> = { oauth2_client_credentials: 'OAuth', oauth2_token_exchange: 'exchange', aws_sigv4: 'SigV4' };
/** The exchange's caller is identified by this token (a token exchange needs the caller's token). */
const EXCHANGE_JWT: JwtAlgorithm = 'ES256';
/** The same POST on the route of each credential type. */
const CRED_POSTS: readonly Workload[] = CRED_TYPES.map((t) => ({
  name: `POST 1KB ${CRED_LABEL[t]}`,
  group: 'cred',
  method: 'POST',
  path: `${CRED_ROUTES[t].prefix}items`,
  body: NOTE_1KB,
  cred: t,
  portcullisOnly: true,
  ...(t === 'oauth2_token_exchange' ? { jwt: EXCHANGE_JWT } : {}),
}));
/** The static-bearer POST with the exchange's caller (a JWT): the exchange's second baseline, so the token's identity cost is not charged to the exchange. */
const POST_JWT: Workload = {
  name: `POST 1KB JWT ${EXCHANGE_JWT}`,
  group: 'cred',
  method: 'POST',
  path: PATH,
  body: NOTE_1KB,
  jwt: EXCHANGE_JWT,
  portcullisOnly: true,
};

const ALL_WORKLOADS: readonly Workload[] = [GET, POST, MCP_CALL, ...JWT_GETS, POST_JWT, ...CRED_POSTS];

const GROUPS = (process.env.BENCH_WORKLOADS || DEFAULT_GROUPS.join(',')).split(',') as Group[];
if (GROUPS.length === 0 || !GROUPS.every((g) => ALL_GROUPS.includes(g)))
  throw new Error(`BENCH_WORKLOADS must list some of ${ALL_GROUPS.join(', ')}, not "${process.env.BENCH_WORKLOADS}"`);

/** The credential types this checkout's config schema knows (the providers land one by one). */
const SCHEMA_TYPES = CONFIG_SCHEMA.properties.credentials.additionalProperties.properties.type.enum as readonly string[];
/** The credential types measured: those asked for (BENCH_CRED_TYPES) that the schema knows. */
const CRED_SELECTED: readonly CredType[] = (() => {
  if (!GROUPS.includes('cred')) return [];
  const asked = (process.env.BENCH_CRED_TYPES || Object.keys(CRED_SHORT).join(',')).split(',').map((n) => {
    const t = CRED_SHORT[n] ?? (CRED_TYPES.includes(n as CredType) ? (n as CredType) : undefined);
    if (!t) throw new Error(`BENCH_CRED_TYPES must list some of ${Object.keys(CRED_SHORT).join(', ')}, not "${process.env.BENCH_CRED_TYPES}"`);
    return t;
  });
  const known = asked.filter((t) => SCHEMA_TYPES.includes(t));
  for (const t of asked.filter((x) => !known.includes(x)))
    process.stderr.write(`bench: credential type ${t} skipped: this checkout's config schema does not know it yet (src/config/schema.ts)\n`);
  return CRED_TYPES.filter((t) => known.includes(t));
})();

// The JWT workloads are judged against the agent-key GET of the same run, the credential
// workloads against the static-bearer POST (and the exchange against that POST with its JWT caller): they come with them.
const WORKLOADS = ALL_WORKLOADS.filter(
  (w) =>
    (w.group === 'cred' ? (w.cred ? CRED_SELECTED.includes(w.cred) : CRED_SELECTED.includes('oauth2_token_exchange')) : GROUPS.includes(w.group)) ||
    (w === GET && GROUPS.includes('jwt')) ||
    (w === POST && GROUPS.includes('cred')),
);
const FULL_RUN = GROUPS.length === DEFAULT_GROUPS.length && DEFAULT_GROUPS.every((g) => GROUPS.includes(g));

/** The issuer of the JWT workloads' tokens and keys, when they run. */
let issuer: JwtIssuer | null = null;
/** The token endpoint of the OAuth credential workloads, when they run. */
let tokenServer: TokenServer | null = null;

/** The MCP session each target's client opened in preflight (the gateway binds sessions to agents). */
const mcpSessions = new Map<TargetName, string>();

function headersFor(w: Workload, target: TargetName, key = credentialOf(w)): Record<string, string> {
  // Every target gets the same bytes: the agent key means nothing to the upstream or the bare proxy.
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, ...(w.body !== undefined ? { 'content-type': 'application/json' } : {}) };
  if (w.group !== 'mcp') return headers;
  const session = mcpSessions.get(target);
  return { ...headers, accept: 'application/json, text/event-stream', 'mcp-protocol-version': MCP_VERSION, ...(session ? { 'mcp-session-id': session } : {}) };
}

/** What the agent of workload `w` presents as its bearer credential. */
function credentialOf(w: Workload): string {
  if (w.jwt === undefined) return AGENT_KEY;
  if (!issuer) throw new Error('the JWT workloads run without their issuer');
  return issuer.tokens[w.jwt];
}

/** Run settings, from the environment. */
const settings = {
  durationSeconds: numberSetting('BENCH_DURATION', 5),
  warmupSeconds: numberSetting('BENCH_WARMUP', 1),
  primeSeconds: numberSetting('BENCH_PRIME', 1),
  connections: listSetting('BENCH_CONNECTIONS', [1, 16, 64]),
  relaxed: process.env.BENCH_RELAXED !== '0',
  pin: process.env.BENCH_PIN !== '0' && os.availableParallelism() >= 2 && canPin(),
  cpuProfile: process.env.BENCH_CPU_PROF === '1',
  perf: process.env.BENCH_PERF === '1',
  /** Extra Node flags for the gateways only (e.g. V8 heap settings to compare), space-separated. */
  gatewayNodeFlags: (process.env.BENCH_GATEWAY_NODE_FLAGS ?? '').split(' ').filter((f) => f !== ''),
  keep: process.env.BENCH_KEEP === '1',
  maxForeignCores: numberSetting('BENCH_MAX_FOREIGN_CPU', 0.1),
  retries: numberSetting('BENCH_RETRIES', 2),
  rounds: Math.max(1, numberSetting('BENCH_ROUNDS', 1)),
  credTypes: CRED_SELECTED,
};

/** The SigV4 route's secret key (the key id is SIGV4.accessKeyId). */
const SIGV4_SECRET = 'bench/sigv4/secret/key/not/a/secret/000000';

/** Whether workload `w` runs on `target`. */
const runsOn = (w: Workload, target: TargetName) => !w.portcullisOnly || target.startsWith('portcullis');

/** Fails the run with a message that says what went wrong and where. */
function fail(message: string): never {
  throw new Error(`benchmark invalid: ${message}`);
}

/** The processes of one benchmark run. */
interface Bench {
  readonly upstream: Child;
  readonly load: Child;
  /** Every target, in TARGETS order ('direct' is the upstream itself). */
  readonly targets: ReadonlyMap<TargetName, Child>;
  /** Every process started, for stopping and for telling our CPU use from others'. */
  readonly children: readonly Child[];
}

/** What the gateways need for the credential workloads' routes (bench/gateway.ts). */
function credentialEnv(): Record<string, string> {
  if (settings.credTypes.length === 0) return {};
  return {
    BENCH_CRED_TYPES: settings.credTypes.join(','),
    ...(tokenServer ? { BENCH_TOKEN_URL: tokenServer.tokenUrl, BENCH_CLIENT_SECRET: CLIENT_SECRET } : {}),
    ...(settings.credTypes.includes('aws_sigv4') ? { BENCH_AWS_ACCESS_KEY_ID: SIGV4.accessKeyId, BENCH_AWS_SECRET_ACCESS_KEY: SIGV4_SECRET } : {}),
  };
}

/** Starts the upstream, then the proxies and the load generator; each is stopped by the caller. */
async function startBench(work: string, children: Child[]): Promise<Bench> {
  const cpu = (n: number) => (settings.pin ? n : null);
  const started = async (pending: Promise<Child>) => {
    const child = await pending;
    children.push(child);
    return child;
  };
  const upstream = await started(startChild({ script: 'upstream', name: 'upstream', cpu: cpu(1), env: { BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN } }));
  const env = {
    BENCH_UPSTREAM_URL: upstream.url,
    BENCH_UPSTREAM_TOKEN: UPSTREAM_TOKEN,
    BENCH_AGENT_KEY: AGENT_KEY,
    ...(issuer ? { BENCH_JWKS_URI: issuer.jwksUri } : {}),
  };
  const gateway = (durability: 'strict' | 'relaxed') =>
    started(
      startChild({
        script: 'gateway',
        name: `portcullis-${durability}`,
        cpu: cpu(1),
        env: { ...env, ...credentialEnv(), BENCH_DURABILITY: durability, BENCH_WORK_DIR: path.join(work, durability) },
        execArgv: [
          ...settings.gatewayNodeFlags,
          ...(settings.perf ? PERF_NODE_FLAGS : []),
          ...(settings.cpuProfile
            ? ['--cpu-prof', '--cpu-prof-dir', path.join(RESULTS_DIR, 'profiles'), '--cpu-prof-name', `portcullis-${durability}.cpuprofile`]
            : []),
        ],
      }),
    );
  const [bare, strict, relaxed, load] = await Promise.all([
    // http-proxy 1.18 calls the deprecated util._extend; the warning is noise here.
    started(
      startChild({ script: 'bare-proxy', name: 'bare-proxy', cpu: cpu(1), env, execArgv: ['--no-deprecation', ...(settings.perf ? PERF_NODE_FLAGS : [])] }),
    ),
    gateway('strict'),
    settings.relaxed ? gateway('relaxed') : null,
    started(startChild({ script: 'load', name: 'load generator', cpu: cpu(0) })),
  ]);
  const targets = new Map<TargetName, Child>([
    ['direct', upstream],
    ['bare-proxy', bare],
    ['portcullis-strict', strict],
  ]);
  if (relaxed) targets.set('portcullis-relaxed', relaxed);
  return { upstream, load, targets, children };
}

/** One request of `w` to a target, with a fresh JSON-RPC id where the body asks for one. */
async function send(
  child: Child,
  target: TargetName,
  w: Workload,
  body = w.body,
  key = credentialOf(w),
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; injected: boolean; text: string; headers: Headers }> {
  const res = await fetch(child.url + w.path, {
    method: w.method,
    headers: { ...headersFor(w, target, key), ...extraHeaders },
    body: body?.replace(FRESH_ID, randomUUID()),
  });
  return { status: res.status, injected: res.headers.get(SAW_CREDENTIAL_HEADER) === '1', text: await res.text(), headers: res.headers };
}

/** The JSON-RPC message of an MCP answer, sent as JSON or as one SSE event. */
function mcpMessage(text: string): { result?: { content?: { text?: string }[]; isError?: boolean }; error?: unknown } {
  const data = text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? 'null');
  return JSON.parse(data) ?? {};
}

/** Opens the MCP session a target's load will use: initialize, then notifications/initialized. */
async function openMcpSession(target: TargetName, child: Child): Promise<void> {
  const init = {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: MCP_VERSION, capabilities: {}, clientInfo: { name: 'portcullis-bench', version: '1.0.0' } },
  };
  const r = await send(child, target, MCP_CALL, JSON.stringify(init));
  const session = r.headers.get('mcp-session-id');
  if (r.status !== 200 || !session) fail(`${target}: MCP initialize answered ${r.status} ${session ? '' : 'without a session id'}`);
  mcpSessions.set(target, session);
  const ready = await send(child, target, MCP_CALL, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  if (ready.status !== 202) fail(`${target}: notifications/initialized answered ${ready.status}, expected 202`);
}

/**
 * Checks, through a gateway, that the upstream received workload `w`'s route credential: the
 * static bearer; a token the token endpoint issued for that grant (OAuth, exchange); or a SigV4
 * Authorization with the bench's key id, scope and signed headers, x-amz-date, and an
 * x-amz-content-sha256 that is the hash of the body received.
 */
async function checkCredentialSeen(target: TargetName, child: Child, w: Workload): Promise<void> {
  const r = await send(child, target, w, w.body, credentialOf(w), { [INSPECT_HEADER]: '1' });
  if (r.status !== 200) fail(`${target}: ${w.name} (inspected) answered ${r.status}`);
  const seen = JSON.parse(r.text) as AuthorizationSeen;
  const where = `${target}: ${w.name}: the upstream saw`;
  const bearerOf = (tokens: Iterable<string>) => new Set([...tokens].map((t) => sha256Hex(`Bearer ${t}`)));
  const grant: Grant | null = w.cred === 'oauth2_client_credentials' ? 'client_credentials' : w.cred === 'oauth2_token_exchange' ? 'token_exchange' : null;
  if (w.cred === undefined || grant !== null) {
    const expected = grant === null ? bearerOf([UPSTREAM_TOKEN]) : bearerOf(tokenServer?.issued(grant) ?? []);
    if (seen.scheme !== 'Bearer' || !expected.has(seen.authorizationSha256 ?? ''))
      fail(`${where} ${seen.scheme ?? 'no'} Authorization that is not ${grant === null ? 'the static bearer' : `a ${grant} token of the token endpoint`}`);
    return;
  }
  const v4 = seen.sigv4;
  if (seen.scheme !== 'AWS4-HMAC-SHA256' || !v4) fail(`${where} ${seen.scheme ?? 'no'} Authorization, expected AWS4-HMAC-SHA256 Credential=...`);
  if (v4.keyIdSha256 !== sha256Hex(SIGV4.accessKeyId)) fail(`${where} a Credential= key id that is not ${SIGV4.accessKeyId}`);
  if (!new RegExp(`^\\d{8}/${SIGV4.region}/${SIGV4.service}/aws4_request$`).test(v4.scope)) fail(`${where} the credential scope ${v4.scope}`);
  for (const h of ['host', 'x-amz-date', 'x-amz-content-sha256'])
    if (!v4.signedHeaders.includes(h)) fail(`${where} SignedHeaders=${v4.signedHeaders.join(';')}, without ${h}`);
  if (!v4.signatureHex) fail(`${where} a Signature= that is not 64 hex digits`);
  if (!/^\d{8}T\d{6}Z$/.test(seen.amzDate ?? '') || seen.amzDate?.slice(0, 8) !== v4.scope.slice(0, 8)) fail(`${where} x-amz-date ${seen.amzDate}`);
  if (seen.amzContentSha256 !== seen.bodySha256) fail(`${where} x-amz-content-sha256 ${seen.amzContentSha256}, not the hash of the body received`);
}

/** Checks each target by hand before loading it, so a deny or a missing credential cannot pass as speed. */
async function preflight(bench: Bench): Promise<void> {
  for (const [name, child] of bench.targets) {
    const portcullis = name.startsWith('portcullis');
    if (WORKLOADS.includes(MCP_CALL)) await openMcpSession(name, child);
    const mine = WORKLOADS.filter((w) => runsOn(w, name));
    for (const w of mine) {
      const r = await send(child, name, w);
      if (r.status !== 200) fail(`${name}: ${w.name} answered ${r.status}, expected 200: ${r.text.slice(0, 300)}`);
      // The static bearer reaches the upstream through Portcullis only, and never on a route holding another credential.
      if (r.injected !== (portcullis && !w.cred))
        fail(`${name}: ${w.name}: the upstream ${r.injected ? 'received' : 'did not receive'} the static route credential`);
      if (portcullis && w.group !== 'mcp') await checkCredentialSeen(name, child, w);
      if (w.group === 'mcp') {
        const echoed = mcpMessage(r.text).result;
        if (!echoed || echoed.isError || echoed.content?.[0]?.text?.length !== MCP_MESSAGE_BYTES)
          fail(`${name}: ${w.name} was not echoed: ${r.text.slice(0, 200)}`);
      }
    }
    if (!portcullis) continue;
    for (const w of mine) {
      if (w.group === 'http' && w.method === 'POST') {
        const denied = await send(child, name, w, '{"kind":"other","text":""}');
        if (denied.status !== 403) fail(`${name}: a POST the policy forbids answered ${denied.status}, expected 403`);
      }
      if (w.group === 'mcp') {
        // Denied in the protocol: 200 with a tool result marked isError, never reaching the server.
        const denied = await send(child, name, w, mcpCall('my -----BEGIN PRIVATE KEY-----'));
        if (denied.status !== 200 || mcpMessage(denied.text).result?.isError !== true)
          fail(`${name}: a tools/call the policy forbids was not denied: ${denied.status} ${denied.text.slice(0, 200)}`);
      }
      const stranger = await send(child, name, w, w.body, 'not-an-agent-key');
      if (stranger.status < 400) fail(`${name}: ${w.name} with an unknown agent key answered ${stranger.status}`);
      if (w.jwt !== undefined) {
        // Same header and claims, signed by a key the issuer never published: a fast refusal must not pass for a verification.
        const forged = await send(child, name, w, w.body, issuer?.forged[w.jwt]);
        if (forged.status !== 401 || !/error="invalid_token"/.test(forged.headers.get('www-authenticate') ?? ''))
          fail(`${name}: ${w.name} with a forged token answered ${forged.status} (${forged.headers.get('www-authenticate')}), expected 401 invalid_token`);
      }
      if (w.cred === 'oauth2_token_exchange') {
        // An agent key is no subject token: the exchange cannot serve the call, and says so.
        const keyed = await send(child, name, w, w.body, AGENT_KEY);
        if (keyed.status !== 403) fail(`${name}: ${w.name} with the agent key instead of a token answered ${keyed.status}, expected 403`);
      }
    }
  }
}

function jobFor(bench: Bench, target: TargetName, w: Workload, connections: number): LoadJob {
  return {
    type: 'run',
    url: (bench.targets.get(target) as Child).url + w.path,
    method: w.method,
    headers: headersFor(w, target),
    body: w.body,
    idReplacement: w.body?.includes(FRESH_ID) ?? false,
    connections,
    warmupSeconds: settings.warmupSeconds,
    durationSeconds: settings.durationSeconds,
  };
}

/** Tool calls the upstream's MCP server has executed so far. */
async function toolCallsExecuted(bench: Bench): Promise<number> {
  return (await bench.upstream.ask<McpStatsReply>({ type: 'mcp-stats' })).toolCalls;
}

/**
 * Runs a load job. For MCP, also checks that the server executed at least as many tool calls
 * as were answered 200: a call the gateway denies is answered 200 too (in the protocol), and
 * is fast, so without this check a deny could pass for speed.
 */
async function runJob(bench: Bench, target: TargetName, w: Workload, job: LoadJob): Promise<LoadReply> {
  const before = w.group === 'mcp' ? await toolCallsExecuted(bench) : 0;
  const reply = await bench.load.ask<LoadReply>(job);
  if (w.group === 'mcp' && reply.type === 'result') {
    const executed = (await toolCallsExecuted(bench)) - before;
    const answered = reply.requests + reply.warmupRequests;
    if (executed < answered) fail(`${target} ${w.name} c=${job.connections}: ${answered} calls answered 2xx but the MCP server executed ${executed}`);
  }
  return reply;
}

/** Gives every target each workload once, unmeasured, so JIT compilation is done before the first run. */
async function prime(bench: Bench): Promise<void> {
  if (settings.primeSeconds === 0) return;
  for (const target of bench.targets.keys()) {
    for (const w of WORKLOADS.filter((x) => runsOn(x, target))) {
      const job = { ...jobFor(bench, target, w, Math.max(...settings.connections)), warmupSeconds: 0, durationSeconds: settings.primeSeconds };
      const reply = await runJob(bench, target, w, job);
      if (reply.type === 'error') fail(`${target} ${w.name} (priming): autocannon failed: ${reply.message}`);
      const failures = failuresOf(reply);
      if (failures.length > 0) fail(`${target} ${w.name} (priming): ${failures.join('; ')}`);
    }
  }
}

/** A run's result with how disturbed it was and what it cost. */
type Measured = Omit<Row, 'workload' | 'connections' | 'target'>;

function perRequestUs(before: number | null, after: number | null, r: LoadResult): number | null {
  return before === null || after === null ? null : ((after - before) / (r.requests + r.warmupRequests)) * 1e6;
}

/**
 * Runs one job, repeating it (up to settings.retries times) while processes outside the
 * benchmark used more than settings.maxForeignCores of the machine; keeps the least disturbed.
 */
async function measure(bench: Bench, target: TargetName, w: Workload, job: LoadJob): Promise<Measured> {
  const own = [process.pid, ...bench.children.map((c) => c.process.pid as number)];
  const targetPid = (bench.targets.get(target) as Child).process.pid as number;
  const upstreamPid = bench.upstream.process.pid as number;
  const sample = () => ({ machine: sampleCpu(own), target: processCpuSeconds(targetPid), upstream: processCpuSeconds(upstreamPid) });
  let best: Omit<Measured, 'attempts'> | null = null;
  let attempts = 0;
  while (attempts <= settings.retries) {
    attempts++;
    const before = sample();
    const reply = await runJob(bench, target, w, job);
    const after = sample();
    if (reply.type === 'error') fail(`${target}: autocannon failed: ${reply.message}`);
    const { type: _type, ...result } = reply;
    const share = before.machine && after.machine ? cpuShareBetween(before.machine, after.machine) : null;
    const foreignCores = share?.foreignCores ?? null;
    if (!best || (foreignCores ?? 0) < (best.foreignCores ?? 0)) {
      best = {
        ...result,
        foreignCores,
        stealCores: share?.stealCores ?? null,
        cpuUsPerRequest: perRequestUs(before.target, after.target, reply),
        upstreamCpuUsPerRequest: perRequestUs(before.upstream, after.upstream, reply),
      };
    }
    if (foreignCores === null || foreignCores <= settings.maxForeignCores) break;
    process.stderr.write(`bench: other processes used ${foreignCores.toFixed(2)} cores during that run; repeating it\n`);
  }
  return { ...(best as Omit<Measured, 'attempts'>), attempts };
}

/** One run to make: a workload on a target at a connection count, in a round. */
interface Step {
  readonly w: Workload;
  readonly connections: number;
  readonly target: TargetName;
  readonly round: number;
}

/** `list` rotated left by `k`. */
const rotate = <T>(list: readonly T[], k: number): T[] => {
  const n = list.length === 0 ? 0 : k % list.length;
  return [...list.slice(n), ...list.slice(0, n)];
};

/**
 * The runs, in blocks; each block's rows are reported together, in WORKLOADS then TARGETS order.
 * By default a block is one workload at one connection count on every target, the targets'
 * order rotating from one block to the next (on a shared VM, position alone moved results by
 * 10–20%). With the JWT workloads, the connection count is the outer loop instead of the
 * workload, so the agent-key and token rows that are set against each other are measured within
 * a minute of each other (on this shared VM, CPU per call drifted by tens of µs over a few
 * minutes). With the credential workloads, closer still: a block is one round at one connection
 * count, and each target runs all its workloads back to back (their order rotating from round
 * to round), so a credential's row and the static bearer's are a few seconds apart.
 */
function plan(targets: readonly TargetName[]): Step[][] {
  const blocks: Step[][] = [];
  const rounds = Array.from({ length: settings.rounds }, (_, i) => i + 1);
  if (GROUPS.includes('cred')) {
    for (const round of rounds)
      for (const connections of settings.connections) {
        const k = blocks.length;
        blocks.push(
          rotate(targets, k).flatMap((target) =>
            rotate(
              WORKLOADS.filter((w) => runsOn(w, target)),
              k,
            ).map((w) => ({ w, connections, target, round })),
          ),
        );
      }
    return blocks;
  }
  const order = GROUPS.includes('jwt')
    ? settings.connections.flatMap((connections) => WORKLOADS.map((w) => ({ w, connections })))
    : WORKLOADS.flatMap((w) => settings.connections.map((connections) => ({ w, connections })));
  for (const round of rounds)
    for (const { w, connections } of order) {
      const k = blocks.length;
      blocks.push(
        rotate(targets, k)
          .filter((target) => runsOn(w, target))
          .map((target) => ({ w, connections, target, round })),
      );
    }
  return blocks;
}

/** Measures every planned run, stopping at the first failed request. */
async function runAll(bench: Bench): Promise<Row[]> {
  const rows: Row[] = [];
  const blocks = plan([...bench.targets.keys()]);
  const total = blocks.reduce((n, b) => n + b.length, 0);
  for (const block of blocks) {
    const start = rows.length;
    for (const { w, connections, target, round } of block) {
      const child = bench.targets.get(target) as Child;
      const row: Row = {
        workload: w.name,
        connections,
        target,
        ...(await measure(bench, target, w, jobFor(bench, target, w, connections))),
        ...(settings.rounds > 1 ? { round } : {}),
      };
      // One failed request makes the figures meaningless (a deny is fast): stop here.
      const failures = failuresOf(row);
      if (child.process.exitCode !== null || child.process.signalCode !== null) failures.push('the target process died');
      if (failures.length > 0) fail(`${target} ${w.name} c=${connections}: ${failures.join('; ')}`);
      rows.push(row);
      process.stderr.write(
        `bench: ${rows.length}/${total} ${w.name} c=${connections} ${target}${settings.rounds > 1 ? ` round ${round}` : ''}: ` +
          `${Math.round(row.requestsPerSecond)} req/s, p50 ${row.p50Ms.toFixed(3)} ms, ${row.cpuUsPerRequest?.toFixed(0) ?? '?'} µs CPU/req\n`,
      );
    }
    // Report in WORKLOADS and TARGETS order whatever order the block ran in.
    const workloadIndex = (name: string) => WORKLOADS.findIndex((w) => w.name === name);
    rows.push(
      ...rows.splice(start).sort((a, b) => workloadIndex(a.workload) - workloadIndex(b.workload) || TARGETS.indexOf(a.target) - TARGETS.indexOf(b.target)),
    );
  }
  return rows;
}

/**
 * Checks that the gateways used cached tokens: each gateway asks the token endpoint once per
 * OAuth credential (its tokens live an hour, longer than any run; a refresh or a retry may add
 * one), so at most twice per gateway per grant, and at least once when the grant's route ran.
 * Every request the endpoint refused fails the run too.
 */
function checkTokenEndpoint(bench: Bench): { hits: Record<Grant, number>; gateways: number } | null {
  if (!tokenServer) return null;
  const gateways = [...bench.targets.keys()].filter((t) => t.startsWith('portcullis')).length;
  const hits = tokenServer.hits();
  const refusals = tokenServer.refusals();
  if (refusals.length > 0) fail(`the token endpoint refused ${refusals.length} request(s): ${refusals.slice(0, 3).join('; ')}`);
  const ran: Record<Grant, boolean> = {
    client_credentials: settings.credTypes.includes('oauth2_client_credentials'),
    token_exchange: settings.credTypes.includes('oauth2_token_exchange'),
  };
  for (const grant of Object.keys(hits) as Grant[]) {
    const n = hits[grant];
    if (ran[grant] && n < 1) fail(`the token endpoint was never asked for a ${grant} token`);
    if (n > 2 * gateways)
      fail(`the token endpoint issued ${n} ${grant} tokens to ${gateways} gateways (at most ${2 * gateways} expected): tokens are not cached`);
  }
  return { hits, gateways };
}

/**
 * Checks that the gateways verified tokens with a cached key set: jose's createRemoteJWKSet
 * fetches it once, then again only when it is 10 minutes old (or a kid is unknown, which no
 * bench token is), so each gateway may have fetched it once per started 10 minutes.
 */
function checkJwks(bench: Bench, rows: readonly Row[], elapsedS: number): { fetches: number; gateways: number; tokenCalls: number } | null {
  if (!issuer) return null;
  const gateways = [...bench.targets.keys()].filter((t) => t.startsWith('portcullis')).length;
  const fetches = issuer.hits();
  const allowed = gateways * Math.ceil(elapsedS / 600);
  const tokenCalls = rows
    .filter((r) => r.target.startsWith('portcullis') && WORKLOADS.some((w) => w.name === r.workload && w.jwt !== undefined))
    .reduce((n, r) => n + r.requests + r.warmupRequests, 0);
  if (fetches < 1 || fetches > allowed)
    fail(`the JWKS was fetched ${fetches} times by ${gateways} gateways in ${Math.round(elapsedS)} s (at most ${allowed} expected)`);
  return { fetches, gateways, tokenCalls };
}

/** Checks that every call a gateway answered left a decision and an outcome in its trail. */
async function checkAudit(
  bench: Bench,
  rows: readonly Row[],
): Promise<Record<string, { records: number; callsMeasured: number; credentials: Readonly<Record<string, CredentialCounters>> }>> {
  const out: Record<string, { records: number; callsMeasured: number; credentials: Readonly<Record<string, CredentialCounters>> }> = {};
  for (const [name, child] of bench.targets) {
    if (!name.startsWith('portcullis')) continue;
    const { auditSeq, credentials } = await child.ask<StatsReply>({ type: 'stats' });
    // A lower bound: priming, preflight and repeated runs add records too.
    const callsMeasured = rows.filter((r) => r.target === name).reduce((n, r) => n + r.requests + r.warmupRequests, 0);
    if (auditSeq < 2 * callsMeasured) fail(`${name}: ${auditSeq} audit records for at least ${callsMeasured} calls`);
    out[name] = { records: auditSeq, callsMeasured, credentials };
  }
  return out;
}

/**
 * The credential workloads set against the static-bearer POST of the same gateway, connection
 * count and round: a cached token within MAX_CACHED_TOKEN_ADDED_CPU_US, SigV4 within
 * MAX_SIGV4_ADDED_CPU_US; the exchange also against the static POST with its JWT caller, which
 * leaves out the cost of identifying a caller by a token.
 */
function brokeredComparisons(rows: readonly Row[]): CredentialComparison[] {
  if (!GROUPS.includes('cred')) return [];
  const names = (types: readonly CredType[]) => CRED_POSTS.filter((w) => w.cred && types.includes(w.cred) && WORKLOADS.includes(w)).map((w) => w.name);
  return [
    ...compareCredentials(rows, POST.name, names(['oauth2_client_credentials', 'oauth2_token_exchange']), MAX_CACHED_TOKEN_ADDED_CPU_US),
    ...(WORKLOADS.includes(POST_JWT) ? compareCredentials(rows, POST_JWT.name, names(['oauth2_token_exchange']), MAX_CACHED_TOKEN_ADDED_CPU_US) : []),
    ...compareCredentials(rows, POST.name, names(['aws_sigv4']), MAX_SIGV4_ADDED_CPU_US),
  ];
}

/** The credential workloads' part of the printed report. */
function formatBrokered(list: readonly CredentialComparison[], audit: Record<string, { credentials: Readonly<Record<string, CredentialCounters>> }>): string[] {
  const counters = Object.entries(audit).flatMap(([gateway, a]) =>
    Object.entries(a.credentials)
      .filter(([name]) => name !== 'upstream-token')
      .map(([name, c]) => `${gateway} ${name} (${c.type}): ${c.fetches} fetch(es), ${c.cacheHits} calls from the cache, ${c.failures} failure(s)`),
  );
  if (list.length === 0)
    return ['credential workloads: only the static bearer was measured (no other credential type known to the schema or selected)', ...counters];
  const label = (c: CredentialComparison) => (c.baseline === POST.name ? 'static bearer' : `static bearer (caller ${EXCHANGE_JWT} JWT)`);
  return [formatCredentialComparisons(list, { baseline: 'static', workload: 'cred' }), '', formatCredentialVerdicts(list, label), ...counters];
}

/** The targets BENCH_PERF records: the proxies (the upstream and load generator are not under test). */
function perfTargets(bench: Bench): Map<string, number> {
  return new Map([...bench.targets].filter(([name]) => name !== 'direct').map(([name, child]) => [name, child.process.pid as number]));
}

async function main(): Promise<void> {
  if (settings.perf) assertPerfUsable();
  const environment = describeEnvironment(ROOT, process.env.PORTCULLIS_OPA ?? 'opa');
  const work = workDirectory('portcullis-bench-', settings.keep);
  const auditFilesystem = statfsSync(work).type === TMPFS_MAGIC ? 'tmpfs (fdatasync costs nothing: strict figures are optimistic)' : 'disk';
  const children: Child[] = [];
  const started = Date.now();
  try {
    if (WORKLOADS.some((w) => w.jwt !== undefined)) issuer = await startJwtIssuer(AGENT_ID);
    if (settings.credTypes.some((t) => t.startsWith('oauth2_'))) tokenServer = await startTokenServer(() => issuer?.tokens[EXCHANGE_JWT] ?? null);
    if (GROUPS.includes('cred'))
      process.stderr.write(
        `bench: credential types measured: ${settings.credTypes.length > 0 ? settings.credTypes.join(', ') : 'none (the static bearer only)'}; ` +
          'direct and the bare proxy hold no credentials: they run the static-bearer POST only, as a reference\n',
      );
    const bench = await startBench(work, children);
    await preflight(bench);
    process.stderr.write(
      `bench: priming, then ${plan([...bench.targets.keys()]).reduce((n, b) => n + b.length, 0)} runs of ` +
        `${settings.warmupSeconds}+${settings.durationSeconds} s; ${settings.pin ? 'load generator on CPU 0, upstream and proxy on CPU 1' : 'no CPU pinning'}\n`,
    );
    await prime(bench);
    const stopPerf = settings.perf ? await recordOnCpu(perfTargets(bench), path.join(RESULTS_DIR, 'profiles')) : null;
    const rows = await runAll(bench);
    if (stopPerf) for (const file of await stopPerf()) process.stderr.write(`bench: on-CPU profile written to ${path.relative(process.cwd(), file)}\n`);
    const audit = await checkAudit(bench, rows);
    const jwks = checkJwks(bench, rows, (Date.now() - started) / 1000);
    const tokenEndpoint = checkTokenEndpoint(bench);

    const comparisons = compare(rows);
    const groupOf = (workload: string) => (ALL_WORKLOADS.find((w) => w.name === workload) as Workload).group;
    // The REST and MCP workloads are judged apart: a verdict is over every workload it covers.
    const speed = speedChecks(rows.filter((r) => groupOf(r.workload) !== 'jwt' && groupOf(r.workload) !== 'cred'));
    const verdicts = Object.fromEntries(GROUPS.map((g) => [g, judge(comparisons.filter((c) => groupOf(c.workload) === g))]));
    const credentials = GROUPS.includes('jwt')
      ? compareCredentials(
          rows,
          GET.name,
          JWT_GETS.map((w) => w.name),
        )
      : [];
    const brokered = brokeredComparisons(rows);
    const disturbed = rows
      .filter((r) => r.foreignCores !== null && r.foreignCores > settings.maxForeignCores)
      .map((r) => `${r.target} ${r.workload} c=${r.connections}: other processes used ${(r.foreignCores as number).toFixed(2)} cores`);
    const report = {
      date: new Date().toISOString(),
      settings: {
        ...settings,
        workloads: WORKLOADS.map((w) => ({
          name: w.name,
          group: w.group,
          method: w.method,
          path: w.path,
          bodyBytes: w.body ? w.body.length - (w.body.includes(FRESH_ID) ? FRESH_ID.length - FRESH_ID_BYTES : 0) : 0,
          credential: w.jwt === undefined ? 'agent key' : `JWT ${w.jwt}`,
          upstreamCredential: w.cred ?? 'bearer',
        })),
      },
      environment: { ...environment, auditFilesystem },
      rows,
      comparisons,
      verdicts,
      speed,
      credentials,
      brokered,
      jwks,
      tokenEndpoint,
      audit,
      disturbed,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    // A run of some workloads only does not overwrite the full run's figures.
    const file = path.join(RESULTS_DIR, FULL_RUN ? 'latest.json' : `latest-${GROUPS.join('-')}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);

    const e = environment;
    process.stdout.write(
      [
        '',
        `Portcullis benchmark, ${report.date}`,
        `${e.cpus} × ${e.cpuModel}, ${e.memoryGiB} GiB, ${e.kernel}`,
        `Node ${e.node}, OPA ${e.opa}, undici ${e.undici}, http-proxy ${e.httpProxy}, autocannon ${e.autocannon}, MCP SDK ${e.mcpSdk}`,
        `${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s per run; ${settings.pin ? 'load on CPU 0, upstream + proxy on CPU 1' : 'unpinned'}; audit on ${auditFilesystem}`,
        '',
        formatRows(rows),
        '',
        formatComparisons(comparisons),
        '',
        ...GROUPS.filter((g) => g !== 'cred').map((g) => formatVerdicts(verdicts[g], g === 'mcp' ? 'MCP' : g === 'jwt' ? 'REST with a JWT' : 'REST')),
        ...(speed.length > 0 ? ['', formatSpeedChecks(speed)] : []),
        ...(credentials.length > 0 ? ['', formatCredentialComparisons(credentials), '', formatCredentialVerdicts(credentials)] : []),
        ...(GROUPS.includes('cred') ? ['', ...formatBrokered(brokered, audit)] : []),
        ...(jwks ? [`JWKS fetched ${jwks.fetches} time(s) by ${jwks.gateways} gateway(s) for ${jwks.tokenCalls} token calls measured`] : []),
        ...(tokenEndpoint
          ? [
              `token endpoint: ${tokenEndpoint.hits.client_credentials} client-credentials and ${tokenEndpoint.hits.token_exchange} token-exchange request(s) ` +
                `from ${tokenEndpoint.gateways} gateway(s) for ${rows.filter((r) => r.workload.includes('OAuth') || r.workload.includes('exchange')).reduce((n, r) => n + r.requests + r.warmupRequests, 0)} OAuth calls measured`,
            ]
          : []),
        ...disturbed.map((d) => `warning: ${d}; its figures understate the target`),
        `results written to ${path.relative(process.cwd(), file)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await issuer?.close();
    await tokenServer?.close();
    if (!settings.keep) rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`\n${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

/** Resolves credentials, routes and agents: references checked, secrets read, names unique, errors located. */
import path from 'node:path';
import type { Secret } from '../secret';
import type { ResolveContext } from './context';
import { isOAuthCredential, oauthCredentialOf } from './oauth-credentials';
import { policyConfigOf } from './policies';
import type { RawConfig, RawCredential, RawRoute } from './raw-config';
import type { KeyPath } from './source';
import { checkCaBundle, checkKeyPair, tlsPem } from './tls-files';
import type {
  AgentConfig,
  Credential,
  IdentityMethodName,
  JwtIdentityConfig,
  McpRouteConfig,
  MtlsCredential,
  MtlsIdentityConfig,
  PolicyConfig,
  RouteConfig,
  RouteIdentityConfig,
  SecretRotation,
  StdioServerConfig,
  Timeouts,
} from './types';

/** Headers a credential may not travel in: they frame the request. */
const FRAMING_HEADERS = ['host', 'content-length', 'transfer-encoding', 'connection'];

/** The credentials, by name. */
export function resolveCredentials(ctx: ResolveContext, raw: RawConfig['credentials']): Map<string, Credential> {
  const out = new Map<string, Credential>();
  // A token exchange may name another credential as its actor: those are resolved last.
  const entries = Object.entries(raw);
  const names = Object.keys(raw);
  for (const [name, spec] of entries) if (spec.type !== 'oauth2_token_exchange') out.set(name, credentialOf(ctx, name, spec, out, names));
  for (const [name, spec] of entries) if (spec.type === 'oauth2_token_exchange') out.set(name, credentialOf(ctx, name, spec, out, names));
  return new Map(entries.map(([name]) => [name, out.get(name)!]));
}

/**
 * How a static secret follows its file: watched when it is read from one (docs/credentials.md,
 * Rotation). An env secret cannot change at run time, so the rotation keys are refused with it.
 */
function rotationOf(
  ctx: ResolveContext,
  raw: { readonly rotation_grace_s: number; readonly reload_poll_ms: number },
  file: string | undefined,
  at: KeyPath,
): SecretRotation | null {
  if (file === undefined) {
    for (const key of ['rotation_grace_s', 'reload_poll_ms'])
      if (ctx.source.has([...at, key]))
        ctx.fail('CONFIG_CONFLICT', [...at, key], `${key} only goes with a file secret: an environment variable cannot change while the gateway runs`, {
          key: true,
        });
    return null;
  }
  return Object.freeze({ file: path.resolve(ctx.baseDir, file), graceS: raw.rotation_grace_s, pollMs: raw.reload_poll_ms });
}

/** type mtls: the files exist, are PEM, the key is the certificate's, the CA pin parses. */
function mtlsCredentialOf(ctx: ResolveContext, name: string, raw: Extract<RawCredential, { type: 'mtls' }>, at: KeyPath): MtlsCredential {
  const cert = tlsPem(ctx, raw.cert.file, [...at, 'cert', 'file']);
  const ca = raw.ca === undefined ? null : tlsPem(ctx, raw.ca.file, [...at, 'ca', 'file']);
  if (ca !== null) checkCaBundle(ctx, ca, [...at, 'ca', 'file']);
  if (ctx.secretMode === 'load') checkKeyPair(ctx, cert, tlsPem(ctx, raw.key.file, [...at, 'key', 'file']), [...at, 'key', 'file']);
  return Object.freeze({
    name,
    type: 'mtls',
    certFile: cert.path,
    keyFile: path.resolve(ctx.baseDir, raw.key.file),
    caFile: ca?.path ?? null,
    reloadPollMs: raw.reload_poll_ms,
  });
}

function credentialOf(ctx: ResolveContext, name: string, raw: RawCredential, resolved: ReadonlyMap<string, Credential>, names: readonly string[]): Credential {
  const at = ['credentials', name];
  if (isOAuthCredential(raw)) return oauthCredentialOf(ctx, name, raw, resolved, names);
  switch (raw.type) {
    case 'bearer':
      return Object.freeze({ name, type: 'bearer', token: ctx.secrets.read(raw, at), rotation: rotationOf(ctx, raw, raw.file, at) });
    case 'header': {
      const header = raw.header.toLowerCase();
      if (FRAMING_HEADERS.includes(header))
        ctx.fail('CONFIG_VALUE', [...at, 'header'], `header "${raw.header}" cannot carry a credential: expected a header that does not frame the request`);
      return Object.freeze({ name, type: 'header', header, value: ctx.secrets.read(raw, at), rotation: rotationOf(ctx, raw, raw.file, at) });
    }
    case 'basic':
      return Object.freeze({
        name,
        type: 'basic',
        username: raw.username,
        password: ctx.secrets.read(raw, at, 'password_'),
        rotation: rotationOf(ctx, raw, raw.password_file, at),
      });
    case 'mtls':
      return mtlsCredentialOf(ctx, name, raw, at);
    case 'aws_sigv4': {
      const role = raw.assume_role;
      return Object.freeze({
        name,
        type: 'aws_sigv4',
        service: raw.service,
        region: raw.region,
        accessKeyId: ctx.secrets.read(raw, at, 'access_key_id_'),
        secretAccessKey: ctx.secrets.read(raw, at, 'secret_access_key_'),
        sessionToken: raw.session_token_env !== undefined || raw.session_token_file !== undefined ? ctx.secrets.read(raw, at, 'session_token_') : null,
        assumeRole: role
          ? Object.freeze({
              roleArn: role.role_arn,
              sessionName: role.session_name,
              durationS: role.duration_s,
              stsEndpoint: (role.sts_endpoint ?? `https://sts.${raw.region}.amazonaws.com`).replace(/\/$/, ''),
            })
          : null,
      });
    }
  }
}

/** The timeouts of a route: its own keys over the gateway-wide ones. */
function timeoutsOf(raw: Partial<Record<'connect_ms' | 'headers_ms' | 'idle_ms' | 'total_ms', number>> | undefined, base: Timeouts): Timeouts {
  return Object.freeze({
    connectMs: raw?.connect_ms ?? base.connectMs,
    headersMs: raw?.headers_ms ?? base.headersMs,
    idleMs: raw?.idle_ms ?? base.idleMs,
    totalMs: raw?.total_ms ?? base.totalMs,
  });
}

const MCP_ONLY_KEYS = ['deny_as', 'command', 'env', 'cwd', 'restart'] as const;
const COMMAND_ONLY_KEYS = ['env', 'cwd', 'restart'] as const;

function upstreamOf(ctx: ResolveContext, value: string, at: (string | number)[]): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return ctx.fail('CONFIG_URL', at, `upstream ${JSON.stringify(value)} is not a valid URL`);
  }
  if (url.username || url.password) ctx.fail('CONFIG_URL', at, 'upstream must not embed credentials: use credentials: instead');
  if (url.search || url.hash) ctx.fail('CONFIG_URL', at, `upstream ${JSON.stringify(value)} has a query or fragment: expected a base URL without them`);
  return url;
}

function stdioServerOf(ctx: ResolveContext, raw: RawRoute, at: (string | number)[]): StdioServerConfig {
  const vars: Record<string, string | Secret> = {};
  for (const [name, value] of Object.entries(raw.env)) vars[name] = typeof value === 'string' ? value : ctx.secrets.read(value, [...at, 'env', name]);
  const { initial_delay_ms: initialDelayMs, max_delay_ms: maxDelayMs } = raw.restart;
  if (maxDelayMs < initialDelayMs)
    ctx.fail(
      'CONFIG_RANGE',
      [...at, 'restart', 'max_delay_ms'],
      `max_delay_ms ${maxDelayMs} is out of range: expected at least initial_delay_ms (${initialDelayMs})`,
    );
  return Object.freeze({
    command: Object.freeze([...(raw.command ?? [])]),
    env: Object.freeze(vars),
    cwd: path.resolve(ctx.baseDir, raw.cwd),
    restart: Object.freeze({ initialDelayMs, maxDelayMs }),
    where: ctx.source.locate([...at, 'command']),
  });
}

/** A credential name under `credentials:`, or a located error naming the known ones. */
function namedCredential(ctx: ResolveContext, name: string, at: (string | number)[], credentials: Map<string, Credential>): Credential | null {
  const found = credentials.get(name);
  if (found) return found;
  const known = [...credentials.keys()].join(', ') || 'none';
  ctx.fail('CONFIG_UNKNOWN_CREDENTIAL', at, `unknown credential ${JSON.stringify(name)}: expected one of the names under credentials (${known})`);
  return null;
}

/** routes[].credential, or routes[].credentials with default_credential: the choices the decision has, and the default. */
function routeCredentialsOf(
  ctx: ResolveContext,
  raw: RawRoute,
  at: (string | number)[],
  credentials: Map<string, Credential>,
): { credential: Credential | null; choices: ReadonlyMap<string, Credential> } {
  const choices = new Map<string, Credential>();
  if (raw.credential !== undefined && raw.credentials !== undefined)
    ctx.fail('CONFIG_CONFLICT', [...at, 'credentials'], 'set either credential (one) or credentials (several, chosen by the decision), not both', {
      key: true,
    });
  if (raw.default_credential !== undefined && raw.credentials === undefined)
    ctx.fail('CONFIG_CONFLICT', [...at, 'default_credential'], 'default_credential only goes with credentials (several, by label)', { key: true });
  if (raw.command !== undefined && raw.credentials !== undefined)
    ctx.fail('CONFIG_CONFLICT', [...at, 'credentials'], 'a stdio server gets its secrets through env, not credentials', { key: true });
  if (raw.credential !== undefined) {
    const c = namedCredential(ctx, raw.credential, [...at, 'credential'], credentials);
    if (c) choices.set(raw.credential, c);
    return { credential: c, choices };
  }
  for (const [label, name] of Object.entries(raw.credentials ?? {})) {
    const c = namedCredential(ctx, name, [...at, 'credentials', label], credentials);
    // A client certificate belongs to the connection, which calls with other credentials share.
    if (c?.type === 'mtls')
      ctx.fail(
        'CONFIG_CONFLICT',
        [...at, 'credentials', label],
        `${JSON.stringify(name)} is an mtls credential: it is set on the upstream connection, so name it alone with credential:, not among credentials`,
      );
    if (c) choices.set(label, c);
  }
  let credential: Credential | null = null;
  if (raw.default_credential !== undefined) {
    credential = choices.get(raw.default_credential) ?? null;
    if (!credential)
      ctx.fail(
        'CONFIG_UNKNOWN_CREDENTIAL',
        [...at, 'default_credential'],
        `default_credential ${JSON.stringify(raw.default_credential)} is not a label under credentials (${[...choices.keys()].join(', ')})`,
      );
  }
  return { credential, choices };
}

/** A token exchange needs the caller's token: a route using one must accept callers identified by a token. */
function exchangeNeedsTokens(
  ctx: ResolveContext,
  raw: RawRoute,
  at: (string | number)[],
  choices: ReadonlyMap<string, Credential>,
  identity: RouteIdentityConfig,
): void {
  if (identity.methods.includes('jwt')) return;
  for (const [label, c] of choices) {
    if (c.type !== 'oauth2_token_exchange') continue;
    const where = raw.credential !== undefined ? [...at, 'credential'] : [...at, 'credentials', label];
    ctx.fail(
      'CONFIG_CONFLICT',
      where,
      `credential ${c.name} is a token exchange, which needs callers identified by a token: configure identity.jwt and accept jwt on this route`,
    );
  }
}

/** The gateway's identity settings a route's `identity:` narrows. */
export interface GatewayIdentity {
  readonly jwt: JwtIdentityConfig | null;
  readonly mtls: MtlsIdentityConfig | null;
}

/** The methods the gateway has, in the order the identifier asks them. */
function configuredMethods(identity: GatewayIdentity): readonly IdentityMethodName[] {
  return [...(identity.mtls ? (['mtls'] as const) : []), 'api_key', ...(identity.jwt ? (['jwt'] as const) : [])];
}

/** routes[].identity against the gateway's methods: each named method configured, scopes only with tokens. */
function routeIdentityOf(ctx: ResolveContext, raw: RawRoute['identity'], at: (string | number)[], identity: GatewayIdentity): RouteIdentityConfig {
  const configured = configuredMethods(identity);
  const methods = raw?.methods ?? configured;
  methods.forEach((m, j) => {
    if (!configured.includes(m))
      ctx.fail('CONFIG_CONFLICT', [...at, 'identity', 'methods', j], `identity method ${m} is not configured for the gateway (add identity.${m})`);
  });
  if (raw?.required_scopes !== undefined && identity.jwt === null)
    ctx.fail('CONFIG_CONFLICT', [...at, 'identity', 'required_scopes'], 'required_scopes are the scopes of a token: configure identity.jwt', { key: true });
  if (raw?.required_scopes !== undefined && raw.required_scopes.length > 0 && !methods.includes('jwt'))
    ctx.fail('CONFIG_CONFLICT', [...at, 'identity', 'required_scopes'], 'required_scopes need jwt among the methods: no other identity carries scopes', {
      key: true,
    });
  return Object.freeze({
    methods: Object.freeze([...methods]),
    required: raw?.required ?? identity.jwt?.required ?? false,
    requiredScopes: Object.freeze([...(raw?.required_scopes ?? identity.jwt?.requiredScopes ?? [])]),
  });
}

function routeOf(
  ctx: ResolveContext,
  raw: RawRoute,
  i: number,
  credentials: Map<string, Credential>,
  timeouts: Timeouts,
  identity: GatewayIdentity,
  shadow: PolicyConfig | null,
): RouteConfig {
  const at = ['routes', i];
  // Keys are checked as the file wrote them: the schema's defaults fill in keys of both kinds.
  const written = (k: string) => ctx.source.has([...at, k]);
  if (raw.kind === 'http') {
    for (const k of MCP_ONLY_KEYS)
      if (written(k)) ctx.fail('CONFIG_CONFLICT', [...at, k], `${k} is only for routes of kind mcp (add kind: mcp)`, { key: true });
  } else if (raw.command === undefined) {
    for (const k of COMMAND_ONLY_KEYS) if (written(k)) ctx.fail('CONFIG_CONFLICT', [...at, k], `${k} only goes with command (a stdio server)`, { key: true });
  }
  if (raw.kind === 'mcp' && written('audit_body'))
    ctx.fail('CONFIG_CONFLICT', [...at, 'audit_body'], 'audit_body is for kind http routes: an MCP call keeps its arguments in mcp.arguments', { key: true });
  if (raw.command !== undefined && raw.upstream !== undefined)
    ctx.fail('CONFIG_CONFLICT', [...at, 'command'], 'set either upstream (a remote MCP server) or command (a stdio server), not both', { key: true });
  if (raw.command !== undefined && raw.credential !== undefined) {
    ctx.fail('CONFIG_CONFLICT', [...at, 'credential'], 'a stdio server gets its secrets through env (e.g. env: {API_TOKEN: {env: MY_TOKEN}}), not credential', {
      key: true,
    });
  }
  if (raw.upstream === undefined && raw.command === undefined) {
    ctx.fail(
      'CONFIG_MISSING_KEY',
      [...at, 'upstream'],
      raw.kind === 'mcp' ? 'needs upstream (a remote MCP server) or command (a stdio server)' : 'missing required key "upstream"',
    );
  }
  const url = raw.upstream !== undefined ? upstreamOf(ctx, raw.upstream, [...at, 'upstream']) : new URL('http://localhost/mcp');
  const { credential, choices } = routeCredentialsOf(ctx, raw, at, credentials);
  const routeIdentity = routeIdentityOf(ctx, raw.identity, at, identity);
  exchangeNeedsTokens(ctx, raw, at, choices, routeIdentity);
  if (credential?.type === 'mtls' && url.protocol !== 'https:')
    ctx.fail('CONFIG_CONFLICT', [...at, 'credential'], `${JSON.stringify(credential.name)} is a client certificate: the upstream must be https://`);
  const mcp: McpRouteConfig | null =
    raw.kind === 'mcp'
      ? Object.freeze({ denyAs: raw.deny_as, endpoint: url.pathname, stdio: raw.command !== undefined ? stdioServerOf(ctx, raw, at) : null })
      : null;
  return Object.freeze({
    name: raw.name,
    prefix: raw.prefix,
    kind: raw.kind,
    mcp,
    origin: url.origin,
    basePath: url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`,
    credential,
    credentialChoices: choices,
    credentialHeaders: Object.freeze([...new Set([...choices.values()].flatMap((c) => (c.type === 'header' ? [c.header] : [])))]),
    // A signature covers the x-amz-* headers: the agent's own would be signed as the gateway's.
    credentialHeaderPrefixes: Object.freeze([...choices.values()].some((c) => c.type === 'aws_sigv4') ? ['x-amz-'] : []),
    timeouts: timeoutsOf(raw.timeouts, timeouts),
    // A ranged answer is masked piece by piece: a secret split across two ranges escapes the masker.
    forwardRange: raw.forward_range ?? (choices.size === 0 && raw.kind === 'http'),
    identity: routeIdentity,
    auditBody: raw.audit_body,
    mode: raw.mode,
    shadowPolicy: raw.shadow_policy ? policyConfigOf(ctx, raw.shadow_policy, [...at, 'shadow_policy']) : shadow,
  });
}

/** The routes; a repeated name or prefix is an error at the second one. */
export function resolveRoutes(
  ctx: ResolveContext,
  raw: RawConfig['routes'],
  credentials: Map<string, Credential>,
  timeouts: Timeouts,
  identity: GatewayIdentity,
  shadow: PolicyConfig | null,
): readonly RouteConfig[] {
  const names = new Map<string, number>();
  const prefixes = new Map<string, number>();
  const routes = raw.map((r, i) => {
    const line = (n: number, k: string) => ctx.source.locate(['routes', n, k]).line;
    if (names.has(r.name))
      ctx.fail(
        'CONFIG_DUPLICATE_NAME',
        ['routes', i, 'name'],
        `duplicate route name ${JSON.stringify(r.name)} (first at line ${line(names.get(r.name)!, 'name')})`,
      );
    if (prefixes.has(r.prefix))
      ctx.fail(
        'CONFIG_DUPLICATE_PREFIX',
        ['routes', i, 'prefix'],
        `duplicate route prefix ${JSON.stringify(r.prefix)} (first at line ${line(prefixes.get(r.prefix)!, 'prefix')}, route ${JSON.stringify(raw[prefixes.get(r.prefix)!].name)})`,
      );
    names.set(r.name, i);
    prefixes.set(r.prefix, i);
    return routeOf(ctx, r, i, credentials, timeouts, identity, shadow);
  });
  return Object.freeze(routes);
}

/** The agents; ids and keys unique. */
export function resolveAgents(ctx: ResolveContext, raw: RawConfig['agents']): readonly AgentConfig[] {
  const ids = new Set<string>();
  const hashes = new Set<string>();
  return Object.freeze(
    raw.map((a, i) => {
      if (ids.has(a.id)) ctx.fail('CONFIG_DUPLICATE_NAME', ['agents', i, 'id'], `duplicate agent id ${JSON.stringify(a.id)}`);
      if (hashes.has(a.key_sha256)) ctx.fail('CONFIG_DUPLICATE_NAME', ['agents', i, 'key_sha256'], 'the same key is configured for two agents');
      ids.add(a.id);
      hashes.add(a.key_sha256);
      return Object.freeze({ id: a.id, keySha256: Buffer.from(a.key_sha256, 'hex') });
    }),
  );
}

/**
 * Loads portcullis.yaml once at start-up: parses it (source.ts), validates it and applies the
 * schema's defaults (validate.ts), resolves paths relative to the file, reads secrets through
 * the secret sources (secrets/), and freezes the result. Every problem is a ConfigError with a
 * stable code, naming the file, the line and column, and the key path.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors';
import { revealSecret, type Secret } from '../secret';
import { ResolveContext } from './context';
import { resolveListener } from './listeners';
import type { RawConfig } from './raw-config';
import { policyConfigOf } from './policies';
import { resolveAgents, resolveCredentials, resolveRoutes } from './routes';
import { secretReader, type SecretMode } from './secrets/registry';
import { resolveSinks } from './sinks';
import { ConfigSource } from './source';
import type { AgentTlsConfig, GatewayConfig, JwtIdentityConfig, MtlsIdentityConfig } from './types';
import { checkCaBundle, checkKeyPair, tlsPem } from './tls-files';
import { validateConfig } from './validate';

/** Options for loadConfig and parseConfig. */
export interface LoadOptions {
  /** Where `{env: NAME}` secrets are read. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * 'skip' leaves every secret an unresolved placeholder, for commands that need only the policy
   * and the routes (`portcullis policy test -c`); the gateway refuses to start on such a config.
   * Default 'load'.
   */
  readonly secrets?: SecretMode;
}

/** Reads and validates a config file. Throws ConfigError. */
export function loadConfig(file: string, options: LoadOptions = {}): GatewayConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError('CONFIG_FILE_UNREADABLE', { file: abs, keyPath: '' }, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseConfig(text, abs, options);
}

/** Validates config text as if it were read from `file`. */
export function parseConfig(text: string, file: string, options: LoadOptions = {}): GatewayConfig {
  const source = new ConfigSource(text, file);
  const raw = validateConfig(source);
  const baseDir = path.dirname(file);
  const mode = options.secrets ?? 'load';
  const ctx = new ResolveContext(source, secretReader(source, { env: options.env ?? process.env, baseDir }, mode), baseDir, mode);
  return resolve(ctx, raw, file);
}

function auditOf(ctx: ResolveContext, raw: RawConfig['audit']): GatewayConfig['audit'] {
  const auditPath = path.resolve(ctx.baseDir, raw.path);
  const signingKey = raw.signing_key
    ? Object.freeze({ secret: ctx.secrets.read(raw.signing_key, ['audit', 'signing_key']), where: ctx.source.locate(['audit', 'signing_key']) })
    : null;
  return Object.freeze({
    path: auditPath,
    durability: raw.durability,
    signingKey,
    keyFile: `${auditPath}.key`,
    checkpoint: Object.freeze({ everyRecords: raw.checkpoint.every_records, everySeconds: raw.checkpoint.every_seconds }),
    rotate: Object.freeze({ maxBytes: raw.rotate.max_bytes, maxAgeSeconds: raw.rotate.max_age_seconds }),
    preallocateBytes: raw.preallocate_bytes,
    sinks: resolveSinks(ctx, raw.sinks),
  });
}

function policyOf(ctx: ResolveContext, raw: RawConfig['policy'], auditPath: string): GatewayConfig['policy'] {
  return Object.freeze({
    ...policyConfigOf(ctx, raw, ['policy'], auditPath),
    shadow: raw.shadow ? policyConfigOf(ctx, raw.shadow, ['policy', 'shadow']) : null,
  });
}

function jwtOf(raw: RawConfig['identity']['jwt']): JwtIdentityConfig | null {
  if (raw === undefined) return null;
  return Object.freeze({
    issuer: raw.issuer,
    audience: raw.audience,
    jwksUri: raw.jwks_uri ?? null,
    algorithms: Object.freeze([...raw.algorithms]),
    clockSkewS: raw.clock_skew_s,
    requiredClaims: Object.freeze([...raw.required_claims]),
    agentClaim: raw.agent_claim,
    onBehalfOfClaim: raw.on_behalf_of_claim,
    claimsToPolicy: Object.freeze([...raw.claims_to_policy]),
    requiredScopes: Object.freeze([...raw.required_scopes]),
    resource: raw.resource === undefined ? null : raw.resource.replace(/\/+$/, ''),
    required: raw.required,
  });
}

/** tls: the files exist, are PEM, and the key is the certificate's (docs/identity.md). */
function tlsOf(ctx: ResolveContext, raw: RawConfig['tls']): AgentTlsConfig | null {
  if (raw === undefined) return null;
  const cert = tlsPem(ctx, raw.cert.file, ['tls', 'cert', 'file']);
  const ca = raw.client_ca === undefined ? null : tlsPem(ctx, raw.client_ca.file, ['tls', 'client_ca', 'file']);
  if (ctx.secretMode === 'load') {
    const key = tlsPem(ctx, raw.key.file, ['tls', 'key', 'file']);
    checkKeyPair(ctx, cert, key, ['tls', 'key', 'file']);
    if (ca !== null) checkCaBundle(ctx, ca, ['tls', 'client_ca', 'file']);
  }
  if (raw.client_ca === undefined && ctx.source.has(['tls', 'client_auth']))
    ctx.fail('CONFIG_CONFLICT', ['tls', 'client_auth'], 'client_auth only goes with client_ca', { key: true });
  return Object.freeze({
    certFile: cert.path,
    keyFile: path.resolve(ctx.baseDir, raw.key.file),
    clientCaFile: ca?.path ?? null,
    clientAuth: raw.client_auth,
    reloadPollMs: raw.reload_poll_ms,
  });
}

/** identity.mtls: needs client certificates to be asked for (tls.client_ca). */
function mtlsOf(ctx: ResolveContext, raw: RawConfig['identity']['mtls'], tls: AgentTlsConfig | null): MtlsIdentityConfig | null {
  if (raw === undefined) return null;
  if (tls?.clientCaFile == null)
    ctx.fail('CONFIG_MISSING_KEY', ['identity', 'mtls'], 'identity.mtls needs tls.client_ca: without it no client certificate is asked for', { key: true });
  return Object.freeze({ idFrom: raw.id_from, trustDomain: raw.trust_domain ?? null });
}

/** admin.token: read, and long enough to stand for a credential. */
function adminTokenOf(ctx: ResolveContext, raw: RawConfig['admin']['token']): Secret | null {
  if (raw === undefined) return null;
  const token = ctx.secrets.read(raw, ['admin', 'token']);
  if (ctx.secretMode === 'load' && revealSecret(token).length < 16)
    ctx.fail('CONFIG_VALUE', ['admin', 'token'], `the token from ${token.source} is shorter than 16 characters`);
  return token;
}

function resolve(ctx: ResolveContext, raw: RawConfig, file: string): GatewayConfig {
  const credentials = resolveCredentials(ctx, raw.credentials);
  const t = raw.timeouts;
  const timeouts = Object.freeze({ connectMs: t.connect_ms, headersMs: t.headers_ms, idleMs: t.idle_ms, totalMs: t.total_ms });
  const tls = tlsOf(ctx, raw.tls);
  const identity = Object.freeze({ jwt: jwtOf(raw.identity.jwt), mtls: mtlsOf(ctx, raw.identity.mtls, tls) });
  const audit = auditOf(ctx, raw.audit);
  const policy = policyOf(ctx, raw.policy, audit.path);
  return Object.freeze({
    file,
    secretsLoaded: ctx.secretMode === 'load',
    listen: resolveListener(ctx, raw, []),
    tls,
    admin: Object.freeze({ enabled: raw.admin.enabled, ...resolveListener(ctx, raw.admin, ['admin']), token: adminTokenOf(ctx, raw.admin.token) }),
    policy,
    audit,
    limits: Object.freeze({ maxBodyBytes: raw.limits.max_body_bytes }),
    logLevel: raw.log.level,
    agents: resolveAgents(ctx, raw.agents),
    identity,
    routes: resolveRoutes(ctx, raw.routes, credentials, timeouts, identity, policy.shadow),
  });
}

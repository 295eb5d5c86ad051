/**
 * Loads portcullis.yaml once at start-up: parses, validates against CONFIG_SCHEMA (unknown keys
 * are errors), resolves paths relative to the file, reads credential values, and freezes the
 * result. Every problem is a ConfigError naming the file, the key path and, where known, the line.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import Ajv, { type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, isMap, type Document } from 'yaml';
import { ConfigError } from '../errors';
import { parseSignerKey, type NoteSigner } from '../audit/signed-note';
import { DEFAULT_CHECKPOINT, DEFAULT_ROTATE } from '../audit/writer';
import { revealSecret, Secret } from '../credential-injector/secret';
import { CONFIG_SCHEMA, RENAMED_KEYS } from './schema';
import type { Credential, GatewayConfig, McpRouteConfig, RouteConfig, SinkConfig, SinkTlsConfig, StdioServerConfig, Timeouts } from './types';

const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 5000, headersMs: 30000, idleMs: 300000, totalMs: 900000 };
const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile(CONFIG_SCHEMA);

type Raw = Record<string, any>;

/** Options for loadConfig; `env` defaults to process.env. */
export interface LoadOptions {
  readonly env?: NodeJS.ProcessEnv;
}

/** Reads and validates a config file. Throws ConfigError. */
export function loadConfig(file: string, options: LoadOptions = {}): GatewayConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(abs, '', `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseConfig(text, abs, options);
}

/** Validates config text as if it were read from `file`. */
export function parseConfig(text: string, file: string, options: LoadOptions = {}): GatewayConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new ConfigError(file, '', `invalid YAML: ${e.message.split('\n')[0]}`, line);
  }
  const raw = doc.toJS({ maxAliasCount: 0 }) as unknown;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, '', 'the file must hold a YAML mapping');
  }
  if (!validate(raw)) throw schemaError(file, doc, lines, validate.errors ?? []);
  return resolve(raw as Raw, file, options.env ?? process.env, doc, lines);
}

function keyPathOf(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

function segmentsOf(instancePath: string): (string | number)[] {
  if (!instancePath) return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function lineOf(doc: Document, lines: LineCounter, segments: readonly (string | number)[], key?: string): number | undefined {
  const node: any = segments.length ? doc.getIn(segments, true) : doc.contents;
  if (key && isMap(node)) {
    const pair = node.items.find((p: any) => p.key?.value === key) as { key?: { range?: [number, number] } } | undefined;
    const keyRange = pair?.key?.range;
    if (keyRange) return lines.linePos(keyRange[0]).line;
  }
  const range = (node as { range?: [number, number] } | null)?.range;
  return range ? lines.linePos(range[0]).line : undefined;
}

function schemaError(file: string, doc: Document, lines: LineCounter, errors: readonly ErrorObject[]): ConfigError {
  // Report the most specific problem: unknown keys first, then the deepest path.
  const pick =
    errors.find((e) => e.keyword === 'additionalProperties') ??
    errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'if').sort((a, b) => b.instancePath.length - a.instancePath.length)[0] ??
    errors[0];
  const segments = segmentsOf(pick.instancePath);
  if (pick.keyword === 'additionalProperties') {
    const key = String((pick.params as { additionalProperty: string }).additionalProperty);
    const full = [...segments, key];
    const generic = keyPathOf(full.map((s) => (typeof s === 'number' ? '[]' : s)) as string[]).replace(/\.\[\]/g, '[]');
    const renamed = RENAMED_KEYS[generic.replace(/\[\]\./g, '[].')];
    const problem = renamed ? `unknown key "${key}"; use ${renamed} instead` : `unknown key "${key}"`;
    return new ConfigError(file, keyPathOf(full), problem, lineOf(doc, lines, segments, key));
  }
  let problem = pick.message ?? 'is invalid';
  if (pick.keyword === 'enum') problem = `must be one of ${(pick.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  if (pick.keyword === 'const') problem = `must be ${JSON.stringify((pick.params as { allowedValue: unknown }).allowedValue)}`;
  if (pick.keyword === 'required') problem = `missing required key "${(pick.params as { missingProperty: string }).missingProperty}"`;
  if (pick.keyword === 'pattern') {
    const hint = (pick.parentSchema as { description?: string } | undefined)?.description;
    problem = `has an invalid format${hint ? ` (${hint})` : ''}`;
  }
  return new ConfigError(file, keyPathOf(segments), problem, lineOf(doc, lines, segments));
}

function parseHostPort(value: string, file: string, key: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(value.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(file, key, `port ${value.slice(i + 1)} is out of range`);
  return { host, port };
}

function timeoutsOf(raw: Raw | undefined, base: Timeouts): Timeouts {
  return Object.freeze({
    connectMs: raw?.connect_ms ?? base.connectMs,
    headersMs: raw?.headers_ms ?? base.headersMs,
    idleMs: raw?.idle_ms ?? base.idleMs,
    totalMs: raw?.total_ms ?? base.totalMs,
  });
}

function auditOf(raw: Raw, file: string, env: NodeJS.ProcessEnv, baseDir: string): GatewayConfig['audit'] {
  const sinks = resolveSinks(raw.sinks ?? [], file, env, baseDir);
  const auditPath = path.resolve(baseDir, raw.path);
  let signer: NoteSigner | null = null;
  if (raw.signing_key) {
    const secret = readSecret(file, 'audit.signing_key', raw.signing_key, env, baseDir);
    try {
      signer = parseSignerKey(revealSecret(secret));
    } catch (err) {
      throw new ConfigError(file, 'audit.signing_key', `the key from ${secret.source} is unusable: ${(err as Error).message}`);
    }
  }
  return Object.freeze({
    path: auditPath,
    durability: raw.durability ?? 'strict',
    signer,
    keyFile: `${auditPath}.key`,
    checkpoint: Object.freeze({ everyRecords: raw.checkpoint?.every_records ?? DEFAULT_CHECKPOINT.everyRecords, everySeconds: raw.checkpoint?.every_seconds ?? DEFAULT_CHECKPOINT.everySeconds }),
    rotate: Object.freeze({ maxBytes: raw.rotate?.max_bytes ?? DEFAULT_ROTATE.maxBytes, maxAgeSeconds: raw.rotate?.max_age_seconds ?? DEFAULT_ROTATE.maxAgeSeconds }),
    sinks,
  });
}

function readSecret(
  file: string,
  key: string,
  spec: { env?: string; file?: string },
  env: NodeJS.ProcessEnv,
  baseDir: string,
): Secret {
  if ((spec.env === undefined) === (spec.file === undefined)) {
    throw new ConfigError(file, key, 'set exactly one source for the secret: an environment variable or a file');
  }
  if (spec.env !== undefined) {
    const value = env[spec.env];
    if (value === undefined || value === '') throw new ConfigError(file, key, `environment variable ${spec.env} is not set or empty`);
    return new Secret(value, `env ${spec.env}`);
  }
  const secretPath = path.resolve(baseDir, spec.file as string);
  let value: string;
  try {
    value = readFileSync(secretPath, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError(file, key, `cannot read secret file ${secretPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (value === '') throw new ConfigError(file, key, `secret file ${secretPath} is empty`);
  if (/[\r\n]/.test(value)) throw new ConfigError(file, key, `secret file ${secretPath} holds more than one line`);
  return new Secret(value, `file ${secretPath}`);
}

function resolveCredential(name: string, raw: Raw, file: string, env: NodeJS.ProcessEnv, baseDir: string): Credential {
  const key = `credentials.${name}`;
  switch (raw.type) {
    case 'bearer':
      return Object.freeze({ name, type: 'bearer', token: readSecret(file, key, raw, env, baseDir) });
    case 'header': {
      const header = String(raw.header).toLowerCase();
      if (['host', 'content-length', 'transfer-encoding', 'connection'].includes(header)) {
        throw new ConfigError(file, `${key}.header`, `"${raw.header}" cannot carry a credential`);
      }
      return Object.freeze({ name, type: 'header', header, value: readSecret(file, key, raw, env, baseDir) });
    }
    default:
      return Object.freeze({
        name,
        type: 'basic',
        username: String(raw.username),
        password: readSecret(file, key, { env: raw.password_env, file: raw.password_file }, env, baseDir),
      });
  }
}

const MCP_ONLY_KEYS = ['deny_as', 'command', 'env', 'cwd', 'restart'] as const;
const COMMAND_ONLY_KEYS = ['env', 'cwd', 'restart'] as const;

function parseUpstream(raw: Raw, key: string, file: string): URL {
  let url: URL;
  try {
    url = new URL(raw.upstream);
  } catch {
    throw new ConfigError(file, `${key}.upstream`, `"${raw.upstream}" is not a valid URL`);
  }
  if (url.username || url.password) throw new ConfigError(file, `${key}.upstream`, 'must not embed credentials; use credentials: instead');
  if (url.search || url.hash) throw new ConfigError(file, `${key}.upstream`, 'must not have a query or fragment');
  return url;
}

function stdioServerOf(raw: Raw, key: string, file: string, env: NodeJS.ProcessEnv, baseDir: string): StdioServerConfig {
  const vars: Record<string, string | Secret> = {};
  for (const [name, value] of Object.entries((raw.env ?? {}) as Record<string, unknown>)) {
    vars[name] = typeof value === 'string' ? value : readSecret(file, `${key}.env.${name}`, value as { env?: string; file?: string }, env, baseDir);
  }
  const initialDelayMs = raw.restart?.initial_delay_ms ?? 250;
  const maxDelayMs = raw.restart?.max_delay_ms ?? 30_000;
  if (maxDelayMs < initialDelayMs) throw new ConfigError(file, `${key}.restart.max_delay_ms`, `must be at least initial_delay_ms (${initialDelayMs})`);
  return Object.freeze({
    command: Object.freeze([...(raw.command as string[])]),
    env: Object.freeze(vars),
    cwd: path.resolve(baseDir, raw.cwd ?? '.'),
    restart: Object.freeze({ initialDelayMs, maxDelayMs }),
  });
}

function resolveRoute(raw: Raw, i: number, file: string, credentials: Map<string, Credential>, timeouts: Timeouts, env: NodeJS.ProcessEnv, baseDir: string): RouteConfig {
  const key = `routes[${i}]`;
  const kind: 'http' | 'mcp' = raw.kind ?? 'http';
  if (kind === 'http') {
    for (const k of MCP_ONLY_KEYS) if (raw[k] !== undefined) throw new ConfigError(file, `${key}.${k}`, 'only routes of kind mcp take this key (add kind: mcp)');
  } else if (raw.command === undefined) {
    for (const k of COMMAND_ONLY_KEYS) if (raw[k] !== undefined) throw new ConfigError(file, `${key}.${k}`, 'only goes with command (a stdio server)');
  }
  if (raw.command !== undefined && raw.upstream !== undefined) throw new ConfigError(file, key, 'set either upstream (a remote MCP server) or command (a stdio server), not both');
  if (raw.command !== undefined && raw.credential !== undefined) {
    throw new ConfigError(file, `${key}.credential`, 'a stdio server gets its secrets through env (e.g. env: {API_TOKEN: {env: MY_TOKEN}}), not credential');
  }
  if (raw.upstream === undefined && raw.command === undefined) {
    throw new ConfigError(file, key, kind === 'mcp' ? 'needs upstream (a remote MCP server) or command (a stdio server)' : 'needs upstream');
  }
  const url = raw.upstream !== undefined ? parseUpstream(raw, key, file) : new URL('http://localhost/mcp');
  let credential: Credential | null = null;
  if (raw.credential !== undefined) {
    credential = credentials.get(raw.credential) ?? null;
    if (!credential) {
      const known = [...credentials.keys()].join(', ') || 'none';
      throw new ConfigError(file, `${key}.credential`, `unknown credential "${raw.credential}" (defined: ${known})`);
    }
  }
  const mcp: McpRouteConfig | null =
    kind === 'mcp'
      ? Object.freeze({
          denyAs: raw.deny_as ?? 'result',
          endpoint: url.pathname,
          stdio: raw.command !== undefined ? stdioServerOf(raw, key, file, env, baseDir) : null,
        })
      : null;
  return Object.freeze({
    name: raw.name,
    prefix: raw.prefix,
    kind,
    mcp,
    origin: url.origin,
    basePath: url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`,
    credential,
    timeouts: timeoutsOf(raw.timeouts, timeouts),
    // A ranged answer is masked piece by piece: a secret split across two ranges escapes the masker.
    forwardRange: raw.forward_range ?? (credential === null && kind === 'http'),
  });
}

function readPem(file: string, key: string, value: string, baseDir: string): string {
  const pemPath = path.resolve(baseDir, value);
  let text: string;
  try {
    text = readFileSync(pemPath, 'utf8');
  } catch (err) {
    throw new ConfigError(file, key, `cannot read ${pemPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigError(file, key, `${pemPath} is not a PEM file`);
  return text;
}

function resolveSinkTls(raw: Raw | undefined, file: string, key: string, baseDir: string): SinkTlsConfig | null {
  if (raw === undefined) return null;
  if ((raw.cert === undefined) !== (raw.key === undefined)) throw new ConfigError(file, key, 'cert and key go together');
  return Object.freeze({
    ca: raw.ca === undefined ? null : readPem(file, `${key}.ca`, raw.ca, baseDir),
    cert: raw.cert === undefined ? null : readPem(file, `${key}.cert`, raw.cert, baseDir),
    key: raw.key === undefined ? null : new Secret(readPem(file, `${key}.key`, raw.key, baseDir), `file ${path.resolve(baseDir, raw.key)}`),
    servername: raw.servername ?? null,
  });
}

/** audit.sinks: names unique, secrets and PEM files read, defaults applied (docs/audit-sinks.md). */
function resolveSinks(list: Raw[], file: string, env: NodeJS.ProcessEnv, baseDir: string): readonly SinkConfig[] {
  const names = new Set<string>();
  return Object.freeze(
    list.map((r, i): SinkConfig => {
      const key = `audit.sinks[${i}]`;
      if (names.has(r.name)) throw new ConfigError(file, `${key}.name`, `duplicate sink name "${r.name}"`);
      names.add(r.name);
      const common = { name: r.name as string, maxBackoffMs: (r.max_backoff_ms as number | undefined) ?? 30_000 };
      const tls = resolveSinkTls(r.tls, file, `${key}.tls`, baseDir);
      if (r.type === 'syslog') {
        const { host, port } = parseHostPort(r.address, file, `${key}.address`);
        if (port === 0) throw new ConfigError(file, `${key}.address`, 'the port must not be 0');
        return Object.freeze({
          ...common,
          type: 'syslog',
          host,
          port,
          tls,
          facility: r.facility ?? 13,
          appName: r.app_name ?? 'portcullis',
          hostname: r.hostname ?? null,
          bom: r.bom ?? false,
          confirmMs: r.confirm_ms ?? 200,
          connectTimeoutMs: r.connect_timeout_ms ?? 5000,
        });
      }
      let url: URL;
      try {
        url = new URL(r.url);
      } catch {
        throw new ConfigError(file, `${key}.url`, `"${r.url}" is not a valid URL`);
      }
      if (url.username || url.password) throw new ConfigError(file, `${key}.url`, 'must not embed credentials; use a header or token from a secret');
      const http = { ...common, url: url.href, timeoutMs: (r.timeout_ms as number | undefined) ?? 10_000, tls };
      if (r.type === 'webhook') {
        const headers: Record<string, string | Secret> = {};
        for (const [h, v] of Object.entries((r.headers ?? {}) as Record<string, unknown>)) {
          if (['host', 'content-length', 'content-type', 'transfer-encoding', 'connection'].includes(h.toLowerCase())) {
            throw new ConfigError(file, `${key}.headers.${h}`, 'this header is set by the sink');
          }
          headers[h] = typeof v === 'string' ? v : readSecret(file, `${key}.headers.${h}`, v as Raw, env, baseDir);
        }
        return Object.freeze({ ...http, type: 'webhook', headers: Object.freeze(headers), format: r.format ?? 'json' });
      }
      return Object.freeze({
        ...http,
        type: 'splunk_hec',
        token: readSecret(file, `${key}.token`, r.token, env, baseDir),
        index: r.index ?? null,
        source: r.source ?? 'portcullis',
        sourcetype: r.sourcetype ?? 'portcullis:audit',
        host: r.host ?? null,
      });
    }),
  );
}

function resolve(raw: Raw, file: string, env: NodeJS.ProcessEnv, _doc: Document, _lines: LineCounter): GatewayConfig {
  const baseDir = path.dirname(file);
  const credentials = new Map<string, Credential>();
  for (const [name, spec] of Object.entries((raw.credentials ?? {}) as Record<string, Raw>)) {
    credentials.set(name, resolveCredential(name, spec, file, env, baseDir));
  }
  const timeouts = timeoutsOf(raw.timeouts, DEFAULT_TIMEOUTS);

  const routes: RouteConfig[] = [];
  const names = new Set<string>();
  const prefixes = new Set<string>();
  (raw.routes as Raw[]).forEach((r, i) => {
    if (names.has(r.name)) throw new ConfigError(file, `routes[${i}].name`, `duplicate route name "${r.name}"`);
    if (prefixes.has(r.prefix)) throw new ConfigError(file, `routes[${i}].prefix`, `duplicate route prefix "${r.prefix}"`);
    names.add(r.name);
    prefixes.add(r.prefix);
    routes.push(resolveRoute(r, i, file, credentials, timeouts, env, baseDir));
  });

  const ids = new Set<string>();
  const hashes = new Set<string>();
  const agents = ((raw.agents ?? []) as Raw[]).map((a, i) => {
    if (ids.has(a.id)) throw new ConfigError(file, `agents[${i}].id`, `duplicate agent id "${a.id}"`);
    if (hashes.has(a.key_sha256)) throw new ConfigError(file, `agents[${i}].key_sha256`, 'the same key is configured for two agents');
    ids.add(a.id);
    hashes.add(a.key_sha256);
    return Object.freeze({ id: a.id as string, keySha256: Buffer.from(a.key_sha256, 'hex') });
  });

  const policyPath = path.resolve(baseDir, raw.policy.path);
  let policyIsDir = true;
  try {
    policyIsDir = statSync(policyPath).isDirectory();
  } catch {
    throw new ConfigError(file, 'policy.path', `${policyPath} does not exist`);
  }

  const admin = raw.admin ?? {};
  return Object.freeze({
    file,
    listen: Object.freeze(parseHostPort(raw.listen ?? '127.0.0.1:8080', file, 'listen')),
    admin: Object.freeze({ enabled: admin.enabled ?? true, ...parseHostPort(admin.listen ?? '127.0.0.1:9090', file, 'admin.listen') }),
    policy: Object.freeze({
      path: policyPath,
      entrypoint: raw.policy.entrypoint ?? 'portcullis/decision',
      watch: raw.policy.watch ?? policyIsDir,
      pollMs: raw.policy.poll_ms ?? 2000,
      opa: raw.policy.opa ? path.resolve(baseDir, raw.policy.opa) : null,
    }),
    audit: auditOf(raw.audit, file, env, baseDir),
    limits: Object.freeze({ maxBodyBytes: raw.limits?.max_body_bytes ?? 1024 * 1024 }),
    logLevel: raw.log?.level ?? 'info',
    agents: Object.freeze(agents),
    routes: Object.freeze(routes),
  });
}

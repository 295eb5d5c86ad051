/**
 * Resolves the OAuth credential types (`oauth2_client_credentials`, `oauth2_token_exchange`):
 * the token endpoint (a URL or an issuer), the client authentication and the key material it
 * needs, read and checked once here so that a wrong method, a missing or unusable key file, or a
 * secret for the wrong method refuses to start with the file, line and key path.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Secret, unresolvedSecret } from '../secret';
import type { ResolveContext } from './context';
import { caCertificates } from './pem';
import type { RawCredential } from './raw-config';
import type { KeyPath } from './source';
import type { Credential, OAuthClientCredentialsConfig, TokenClientAuth, TokenEndpointConfig } from './types';

type RawOAuth = Extract<RawCredential, { type: 'oauth2_client_credentials' | 'oauth2_token_exchange' }>;

/** The keys each auth method needs, and those that belong to other methods. */
const METHOD_KEYS = {
  client_secret_basic: ['client_secret_env', 'client_secret_file'],
  client_secret_post: ['client_secret_env', 'client_secret_file'],
  private_key_jwt: ['private_key_file', 'kid'],
  tls_client_auth: ['client_cert_file', 'client_key_file'],
} as const;
const ALL_METHOD_KEYS = ['client_secret_env', 'client_secret_file', 'private_key_file', 'kid', 'client_cert_file', 'client_key_file'] as const;

/** True for the OAuth credential types this file resolves. */
export function isOAuthCredential(raw: RawCredential): raw is RawOAuth {
  return raw.type === 'oauth2_client_credentials' || raw.type === 'oauth2_token_exchange';
}

function readPemFile(ctx: ResolveContext, value: string, at: KeyPath, what: string): string {
  const file = path.resolve(ctx.baseDir, value);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return ctx.fail('CONFIG_PATH', at, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}): expected a PEM ${what}`);
  }
  if (!text.includes('-----BEGIN ')) ctx.fail('CONFIG_PATH', at, `${file} is not a PEM file: expected a PEM ${what}`);
  return text;
}

/** A PEM private key file, checked to parse (its text never appears in an error); pem is null when secrets are skipped. */
function privateKeyOf(ctx: ResolveContext, value: string, at: KeyPath): { secret: Secret; pem: string | null } {
  const file = path.resolve(ctx.baseDir, value);
  if (ctx.secretMode === 'skip') return { secret: unresolvedSecret(`file ${file}`), pem: null };
  const pem = readPemFile(ctx, value, at, 'private key');
  let type: string | undefined;
  try {
    type = createPrivateKey(pem).asymmetricKeyType;
  } catch {
    return ctx.fail('CONFIG_PATH', at, `${file} does not hold a usable private key: expected a PEM private key (PKCS#8, PKCS#1 or SEC1)`);
  }
  if (type !== 'rsa' && type !== 'ec' && type !== 'ed25519')
    ctx.fail('CONFIG_VALUE', at, `${file} holds a ${type} key: expected an RSA, EC (P-256, P-384) or Ed25519 key`);
  return { secret: new Secret(pem, `file ${file}`), pem };
}

function clientAuthOf(ctx: ResolveContext, raw: RawOAuth, at: KeyPath): TokenClientAuth {
  const method = raw.auth_method;
  const own: readonly string[] = METHOD_KEYS[method];
  for (const k of ALL_METHOD_KEYS)
    if (raw[k] !== undefined && !own.includes(k))
      ctx.fail('CONFIG_CONFLICT', [...at, k], `${k} does not go with auth_method ${method} (it takes ${own.join(', ')})`, { key: true });
  switch (method) {
    case 'client_secret_basic':
    case 'client_secret_post':
      return Object.freeze({ method, secret: ctx.secrets.read(raw, at, 'client_secret_') });
    case 'private_key_jwt':
      if (raw.private_key_file === undefined) ctx.fail('CONFIG_MISSING_KEY', at, 'auth_method private_key_jwt needs private_key_file (a PEM private key)');
      return Object.freeze({ method, privateKey: privateKeyOf(ctx, raw.private_key_file, [...at, 'private_key_file']).secret, kid: raw.kid ?? null });
    case 'tls_client_auth': {
      if (raw.client_cert_file === undefined || raw.client_key_file === undefined)
        ctx.fail('CONFIG_MISSING_KEY', at, 'auth_method tls_client_auth needs client_cert_file and client_key_file');
      const certAt = [...at, 'client_cert_file'];
      const cert = readPemFile(ctx, raw.client_cert_file, certAt, 'certificate');
      const key = privateKeyOf(ctx, raw.client_key_file, [...at, 'client_key_file']);
      let x509: X509Certificate;
      try {
        x509 = new X509Certificate(cert);
      } catch {
        return ctx.fail('CONFIG_PATH', certAt, `${path.resolve(ctx.baseDir, raw.client_cert_file)} does not hold a certificate`);
      }
      if (key.pem !== null && !x509.checkPrivateKey(createPrivateKey(key.pem)))
        ctx.fail('CONFIG_CONFLICT', [...at, 'client_key_file'], 'client_key_file is not the key of client_cert_file');
      return Object.freeze({ method, cert, key: key.secret });
    }
  }
}

function endpointOf(ctx: ResolveContext, raw: RawOAuth, at: KeyPath): TokenEndpointConfig {
  if (raw.token_url !== undefined && raw.issuer !== undefined)
    ctx.fail('CONFIG_CONFLICT', [...at, 'issuer'], 'set either token_url or issuer (whose discovery document names the token endpoint), not both', {
      key: true,
    });
  if (raw.token_url === undefined && raw.issuer === undefined)
    ctx.fail('CONFIG_MISSING_KEY', at, 'set token_url, or issuer (whose discovery document names the token endpoint)');
  for (const k of ['token_url', 'issuer'] as const) {
    const v = raw[k];
    if (v === undefined) continue;
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      return ctx.fail('CONFIG_URL', [...at, k], `${k} ${JSON.stringify(v)} is not a valid URL`);
    }
    if (url.username || url.password) ctx.fail('CONFIG_URL', [...at, k], `${k} must not embed credentials: use auth_method and its keys`);
    if (url.hash || (k === 'issuer' && url.search)) ctx.fail('CONFIG_URL', [...at, k], `${k} ${JSON.stringify(v)} has a query or fragment`);
  }
  let ca: string | null = null;
  if (raw.ca_file !== undefined) {
    ca = readPemFile(ctx, raw.ca_file, [...at, 'ca_file'], 'CA bundle');
    try {
      caCertificates(ca);
    } catch (err) {
      ctx.fail('CONFIG_PATH', [...at, 'ca_file'], (err as Error).message);
    }
  }
  return Object.freeze({
    tokenUrl: raw.token_url ?? null,
    issuer: raw.issuer ?? null,
    clientId: raw.client_id,
    auth: clientAuthOf(ctx, raw, at),
    ca,
    scope: Object.freeze([...raw.scope]),
    audience: raw.audience ?? null,
    resource: raw.resource ?? null,
    timeoutMs: raw.timeout_ms,
    refreshBeforeS: raw.refresh_before_s,
  });
}

/**
 * An OAuth credential. A token exchange's `actor` names another credential, which must be an
 * oauth2_client_credentials one, already resolved (`resolved`); `names` are all the credentials' names.
 */
export function oauthCredentialOf(
  ctx: ResolveContext,
  name: string,
  raw: RawOAuth,
  resolved: ReadonlyMap<string, Credential>,
  names: readonly string[],
): Credential {
  const at = ['credentials', name];
  const endpoint = endpointOf(ctx, raw, at);
  if (raw.type === 'oauth2_client_credentials') return Object.freeze({ name, type: raw.type, endpoint });
  let actor: OAuthClientCredentialsConfig | null = null;
  if (raw.actor !== undefined) {
    const found = resolved.get(raw.actor);
    if (!names.includes(raw.actor))
      ctx.fail(
        'CONFIG_UNKNOWN_CREDENTIAL',
        [...at, 'actor'],
        `unknown credential ${JSON.stringify(raw.actor)}: expected the name of an oauth2_client_credentials credential`,
      );
    if (found?.type !== 'oauth2_client_credentials')
      ctx.fail(
        'CONFIG_VALUE',
        [...at, 'actor'],
        `actor ${JSON.stringify(raw.actor)} is not an oauth2_client_credentials credential: expected one (its token is the actor_token)`,
      );
    actor = found;
  }
  return Object.freeze({ name, type: raw.type, endpoint, actor });
}

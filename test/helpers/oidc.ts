/**
 * The authorization server the identity tests run against: oidc-provider in its own Node process
 * (test/helpers/oidc-issuer.mjs; jest cannot load that ES-module-only package), issuing RFC 9068
 * JWT access tokens by client credentials, and by authorization code for a public client.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';

/** A running authorization server. Kill `child` when done. */
export interface Issuer {
  readonly issuer: string;
  readonly child: ChildProcess;
  /** Its stdout, a line at a time (the answers to `rotateKeys`). */
  readonly lines: Interface;
}

/** Options passed to oidc-issuer.mjs: the resources tokens may be minted for, and the client's scope. */
export interface IssuerOptions {
  readonly audiences: readonly string[];
  readonly scope?: string;
  /** A public client of the authorization code grant (PKCE, no secret) and its one redirect URI. */
  readonly publicClient?: { readonly clientId: string; readonly redirectUri: string };
  /** More static clients (oidc-provider client metadata). */
  readonly clients?: readonly Record<string, unknown>[];
  /** Access token lifetime in seconds (default 300). */
  readonly ttl?: number;
  /** Lifetime of exchanged tokens (default ttl). */
  readonly exchangeTtl?: number;
  /** Registers the RFC 8693 token exchange grant type. */
  readonly tokenExchange?: boolean;
  /** Serve HTTPS with this certificate, asking clients for one of `ca` (tls_client_auth). PEM text. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

/** What the issuer counts: POSTs to its token endpoint, and token exchanges it granted. */
export interface IssuerCounts {
  readonly tokenRequests: number;
  readonly exchanges: number;
}

/** The issuer's key set after a rotation: the key id new tokens are signed with, and every key id it publishes. */
export interface IssuerKeys {
  readonly signing: string;
  readonly keys: readonly string[];
}

/** Waits for the next line the issuer prints; rejects if it exits first. */
function nextLine(issuer: Pick<Issuer, 'child' | 'lines'>): Promise<string> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the issuer exited (${code})`));
    issuer.child.once('exit', onExit);
    issuer.lines.once('line', (line) => {
      issuer.child.off('exit', onExit);
      resolve(line);
    });
  });
}

/** Starts the authorization server on a free port; resolves with its issuer URL once it listens. */
export async function startIssuer(options: IssuerOptions): Promise<Issuer> {
  const child = spawn(process.execPath, [path.join(__dirname, 'oidc-issuer.mjs'), JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const lines = createInterface({ input: child.stdout! });
  const first = await nextLine({ child, lines });
  return { issuer: (JSON.parse(first) as { issuer: string }).issuer, child, lines };
}

/**
 * Changes the issuer's keys while it runs and resolves once it serves the new set. `rotate`: new
 * tokens are signed with a new key, and the old keys stay published; `retire`: only the signing
 * key stays published.
 */
export async function rotateKeys(issuer: Issuer, command: 'rotate' | 'retire'): Promise<IssuerKeys> {
  const answer = nextLine(issuer);
  issuer.child.stdin!.write(`${command}\n`);
  return JSON.parse(await answer) as IssuerKeys;
}

/** What a client-credentials token request asks for. */
export interface TokenRequest {
  readonly resource: string;
  readonly scope: string;
  /** The confidential client (default support-bot, which oidc-issuer.mjs registers). */
  readonly client?: string;
  readonly secret?: string;
}

/** A real access token from the issuer by the client credentials grant (client_secret_basic). */
export async function clientCredentialsToken(issuer: Issuer, req: TokenRequest): Promise<string> {
  const basic = Buffer.from(`${req.client ?? 'support-bot'}:${req.secret ?? 'support-secret'}`).toString('base64');
  const res = await fetch(`${issuer.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: req.resource, scope: req.scope }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** How many token requests the issuer has had so far. */
export async function tokenCounts(issuer: Issuer): Promise<IssuerCounts> {
  const answer = nextLine(issuer);
  issuer.child.stdin!.write('count\n');
  return JSON.parse(await answer) as IssuerCounts;
}

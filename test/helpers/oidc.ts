/**
 * The authorization server the identity tests run against: oidc-provider in its own Node process
 * (test/helpers/oidc-issuer.mjs; jest cannot load that ES-module-only package), issuing RFC 9068
 * JWT access tokens by client credentials.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

/** A running authorization server. Kill `child` when done. */
export interface Issuer {
  readonly issuer: string;
  readonly child: ChildProcess;
}

/** Options passed to oidc-issuer.mjs: the resources tokens may be minted for, and the client's scope. */
export interface IssuerOptions {
  readonly audiences: readonly string[];
  readonly scope?: string;
}

/** Starts the authorization server on a free port; resolves with its issuer URL once it listens. */
export async function startIssuer(options: IssuerOptions): Promise<Issuer> {
  const child = spawn(process.execPath, [path.join(__dirname, 'oidc-issuer.mjs'), JSON.stringify(options)], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('exit', (code) => reject(new Error(`the issuer exited (${code})`)));
  });
  return { issuer: (JSON.parse(line) as { issuer: string }).issuer, child };
}

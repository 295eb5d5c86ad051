/**
 * Where a brokered credential's gateway CPU goes, per call, alone: the credential steps of the
 * request pipeline for one call (src/proxy/pipeline.ts: `obtain-credential` builds the call a
 * provider gets and calls `obtain()`; `inject-credential` calls the attachment's `apply()` on
 * the outgoing request), in one process, one call at a time, for every credential of the
 * gateway configuration `npm run bench:cred` runs (bench/gateway.ts): the static bearer, the
 * OAuth client-credentials token and the exchanged token (cached: fetched once from
 * bench/token-server.ts before measuring), and SigV4 when this checkout's schema knows it.
 * `node dist/bench/cred-obtain.js` after a build. CPU per call is the process's (all threads),
 * best of BENCH_BATCHES batches of BENCH_ITERATIONS calls, so it resolves the fraction of a µs
 * that the whole-gateway run cannot. Left out, and the same for every type except where noted:
 * the decision record (an OAuth token's adds `credential_scopes`), and the response masker
 * (SigV4 builds one per call: see its own bench when it has one).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CONFIG_SCHEMA } from '../src/config/schema';
import { parseConfig } from '../src/config/load';
import type { Credential } from '../src/config/types';
import { brokerContext } from '../src/credential-injector/broker-context';
import { NO_CALLER, subjectTokenOf } from '../src/credential-injector/choose';
import type { CredentialCall, CredentialProvider, OutgoingRequest } from '../src/credential-injector/provider';
import { createProvider } from '../src/credential-injector/providers';
import type { AgentIdentity } from '../src/identity/identity-method';
import { CRED_ROUTES, CRED_TYPES, type CredType, configYaml, SIGV4 } from './gateway';
import { startJwtIssuer } from './jwt-issuer';
import { numberSetting } from './settings';
import { CLIENT_SECRET, startTokenServer } from './token-server';

const ITERATIONS = numberSetting('BENCH_ITERATIONS', 50_000);
const BATCHES = Math.max(1, numberSetting('BENCH_BATCHES', 5));
const BODY = Buffer.from(JSON.stringify({ kind: 'note', text: 'x'.repeat(1024 - 25) }));

/** Best (lowest) CPU µs per call of `fn` over the batches, after a warm-up batch. */
async function cpuPerCall(fn: () => unknown): Promise<number> {
  const batch = async () => {
    const before = process.cpuUsage();
    for (let i = 0; i < ITERATIONS; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
    const used = process.cpuUsage(before);
    return (used.user + used.system) / ITERATIONS;
  };
  await batch();
  let best = Number.POSITIVE_INFINITY;
  for (let b = 0; b < BATCHES; b++) best = Math.min(best, await batch());
  return best;
}

async function main(): Promise<void> {
  const known = CONFIG_SCHEMA.properties.credentials.additionalProperties.properties.type.enum as readonly string[];
  const types = CRED_TYPES.filter((t) => known.includes(t));
  const issuer = await startJwtIssuer('bench-bot');
  const subject = issuer.tokens.ES256;
  const tokens = await startTokenServer(() => subject);
  Object.assign(process.env, {
    BENCH_UPSTREAM_TOKEN: 'bench-upstream-token-not-a-secret',
    BENCH_CLIENT_SECRET: CLIENT_SECRET,
    BENCH_AWS_ACCESS_KEY_ID: SIGV4.accessKeyId,
    BENCH_AWS_SECRET_ACCESS_KEY: 'bench/sigv4/secret/key/not/a/secret/000000',
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-cred-obtain-'));
  const policyDir = path.resolve(__dirname, '..', '..', 'bench', 'policy');
  const upstream = 'http://127.0.0.1:9';
  const config = parseConfig(
    configYaml(upstream, 'bench-agent-key', 'relaxed', policyDir, issuer.jwksUri, types, tokens.tokenUrl),
    path.join(dir, 'portcullis.yaml'),
  );
  rmSync(dir, { recursive: true, force: true });

  const broker = brokerContext();
  broker.setSigner({ sign: (text) => `bench-fingerprint-key ${text}` });
  const providers = new Map<string, CredentialProvider>();
  const providerOf = (c: Credential): CredentialProvider => {
    let p = providers.get(c.name);
    if (!p) {
      p = createProvider(c, broker, providerOf);
      providers.set(c.name, p);
    }
    return p;
  };
  // The identity the JWT method gives the exchange's caller (only its method is read here).
  const identity = { id: 'bench-bot', method: 'jwt' } as AgentIdentity;
  const authorization = `Bearer ${subject}`;
  const cases: { label: string; provider: CredentialProvider; origin: string }[] = [];
  for (const [label, routeName] of [['static bearer', 'bench'], ...types.map((t: CredType) => [t, CRED_ROUTES[t].route])] as const) {
    const route = config.routes.find((r) => r.name === routeName);
    if (!route?.credential) throw new Error(`route ${routeName} has no credential`);
    cases.push({ label, provider: providerOf(route.credential), origin: route.origin });
  }

  const lines: string[] = [];
  let staticUs = 0;
  for (const c of cases) {
    const p = c.provider;
    // As obtain-credential builds it: the shared empty call, or the caller's token.
    const call = (): CredentialCall => (!p.needsCaller ? NO_CALLER : { identity, subjectToken: subjectTokenOf(identity.method, authorization), scopes: null });
    const once = (): unknown => {
      const request: OutgoingRequest = {
        method: 'POST',
        origin: c.origin,
        path: '/api/items',
        headers: { 'content-type': 'application/json', 'content-length': String(BODY.length), host: c.origin.slice(7) },
        body: BODY,
      };
      const obtained = p.obtain(call());
      return obtained instanceof Promise ? obtained.then((a) => a.apply(request)) : obtained.apply(request);
    };
    await once(); // the first call fetches (OAuth) and builds the attachment; then it is cached
    const us = await cpuPerCall(once);
    if (c.label === 'static bearer') staticUs = us;
    lines.push(
      `${c.label.padEnd(27)} ${us.toFixed(2).padStart(7)} µs   ${c.label === 'static bearer' ? '' : `${(us - staticUs >= 0 ? '+' : '') + (us - staticUs).toFixed(2)} µs`}`,
    );
  }
  const hits = tokens.hits();
  for (const p of providers.values()) p.close?.();
  await tokens.close();
  await issuer.close();
  const skipped = CRED_TYPES.filter((t) => !types.includes(t));
  process.stdout.write(
    `obtain() + apply() per call, best of ${BATCHES} × ${ITERATIONS} calls, Node ${process.version}; ` +
      `token endpoint asked ${hits.client_credentials} (client credentials) and ${hits.token_exchange} (exchange) time(s)` +
      `${skipped.length ? `; not in this checkout's schema: ${skipped.join(', ')}` : ''}\n` +
      `credential                   CPU/call   vs static\n${lines.join('\n')}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

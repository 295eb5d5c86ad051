/**
 * Where a JWT call's extra gateway CPU goes: the parts of one verification measured alone, in
 * one process, one call at a time (`node dist/bench/jwt-verify.js`, after a build). For each
 * algorithm of bench/jwt-issuer.ts: the gateway's JWT method (src/identity/jwt.ts) with its key
 * set fetched once from the issuer's JWKS server; jose's jwtVerify with a local key set; the
 * signature check alone through WebCrypto (what jose calls) and through node:crypto's
 * synchronous verify; and decoding plus JSON-parsing the header and payload. CPU per call is
 * the process's (all threads: WebCrypto runs on libuv's pool), so it is comparable with the
 * gateway CPU per call of `npm run bench:jwt`. BENCH_ITERATIONS sets the calls per figure (20000).
 */
import { createPublicKey, type JsonWebKey, verify, webcrypto } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, type JWK, jwtVerify } from 'jose';
import type { JwtIdentityConfig } from '../src/config/types';
import { jwtMethod } from '../src/identity/jwt';
import { JWT_ALGORITHMS, JWT_AUDIENCE, JWT_ISSUER, startJwtIssuer } from './jwt-issuer';
import { numberSetting } from './settings';

const ITERATIONS = numberSetting('BENCH_ITERATIONS', 20_000);

/** CPU µs per call of `fn`, after a warm-up of a tenth as many calls. */
async function cpuPerCall(fn: () => unknown): Promise<number> {
  for (let i = 0; i < ITERATIONS / 10; i++) await fn();
  const before = process.cpuUsage();
  for (let i = 0; i < ITERATIONS; i++) await fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / ITERATIONS;
}

const b64 = (s: string) => Buffer.from(s, 'base64url');

async function main(): Promise<void> {
  const issuer = await startJwtIssuer('bench-bot');
  const jwks = issuer.jwks;
  const local = createLocalJWKSet({ keys: [...jwks.keys] });
  const cfg: JwtIdentityConfig = {
    issuer: JWT_ISSUER,
    audience: JWT_AUDIENCE,
    jwksUri: issuer.jwksUri,
    algorithms: [...JWT_ALGORITHMS],
    clockSkewS: 30,
    requiredClaims: [],
    agentClaim: 'sub',
    onBehalfOfClaim: 'act.sub',
    claimsToPolicy: [],
    requiredScopes: [],
    resource: null,
    required: false,
  };
  const method = jwtMethod(cfg);
  const options = { issuer: JWT_ISSUER, audience: JWT_AUDIENCE, algorithms: [...JWT_ALGORITHMS], clockTolerance: 30, requiredClaims: ['exp'] };
  const lines: string[] = [];
  for (const alg of JWT_ALGORITHMS) {
    const token = issuer.tokens[alg];
    const [h, p, sig] = token.split('.');
    const jwk = jwks.keys.find((k) => k.kid === decodeProtectedHeader(token).kid) as JWK;
    const keyObject = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    const params = alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const cryptoKey = await webcrypto.subtle.importKey('jwk', jwk as webcrypto.JsonWebKey, params, false, ['verify']);
    const data = Buffer.from(`${h}.${p}`);
    const signature = b64(sig);
    const nodeKey = alg === 'ES256' ? { key: keyObject, dsaEncoding: 'ieee-p1363' as const } : keyObject;
    if (!verify('sha256', data, nodeKey, signature)) throw new Error(`${alg}: node:crypto does not verify the token`);
    const figures = {
      'gateway JWT method (identify)': await cpuPerCall(() => method.identify({ bearer: token, resource: null })),
      'jose jwtVerify, local key set': await cpuPerCall(() => jwtVerify(token, local, options)),
      'signature, WebCrypto verify': await cpuPerCall(() => webcrypto.subtle.verify(params, cryptoKey, signature, data)),
      'signature, node:crypto verify (sync)': await cpuPerCall(() => verify('sha256', data, nodeKey, signature)),
      'base64url + JSON.parse header and payload': await cpuPerCall(() => [JSON.parse(b64(h).toString()), JSON.parse(b64(p).toString())]),
    };
    for (const [what, us] of Object.entries(figures)) lines.push(`${alg}  ${what.padEnd(42)} ${us.toFixed(1).padStart(6)} µs`);
  }
  await issuer.close();
  process.stdout.write(`CPU per call, ${ITERATIONS} calls each, Node ${process.version}; JWKS fetched ${issuer.hits()} time(s)\n${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

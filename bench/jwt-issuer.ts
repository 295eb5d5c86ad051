/**
 * The token issuer of the JWT workloads (BENCH_WORKLOADS=jwt): key pairs generated with jose at
 * start-up, their public halves served as a static JWKS by a real node:http server on
 * 127.0.0.1:0 (the gateways' `identity.jwt.jwks_uri`), and one access token per algorithm,
 * minted once with a long `exp`. It counts the JWKS fetches, so the run can show that the
 * gateways verified every call with a cached key instead of fetching the set per call.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, type JWK, generateKeyPair, SignJWT } from 'jose';

/** The algorithms measured: verification costs differ a lot between them. */
export const JWT_ALGORITHMS = ['ES256', 'RS256'] as const;
/** One of JWT_ALGORITHMS. */
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export const JWT_ISSUER = 'https://issuer.bench.invalid';
export const JWT_AUDIENCE = 'https://portcullis.bench.invalid/';
/** Path of the key set on the issuer's server. */
const JWKS_PATH = '/jwks';

/** A running issuer. */
export interface JwtIssuer {
  readonly jwksUri: string;
  /** The key set the server answers. */
  readonly jwks: { readonly keys: readonly JWK[] };
  /** A valid token per algorithm, naming the bench agent in `sub`. */
  readonly tokens: Readonly<Record<JwtAlgorithm, string>>;
  /** Per algorithm, a token with the same header and claims signed by a key not in the set. */
  readonly forged: Readonly<Record<JwtAlgorithm, string>>;
  /** Requests the JWKS server has answered so far. */
  hits(): number;
  close(): Promise<void>;
}

/** Generates the keys, starts the JWKS server and mints the tokens for `agent` (its `sub`). */
export async function startJwtIssuer(agent: string): Promise<JwtIssuer> {
  const pairs = await Promise.all(
    JWT_ALGORITHMS.map(async (alg) => ({ alg, kid: `bench-${alg.toLowerCase()}`, key: await generateKeyPair(alg, { extractable: true }) })),
  );
  const keys = await Promise.all(pairs.map(async (p) => ({ ...(await exportJWK(p.key.publicKey)), kid: p.kid, alg: p.alg, use: 'sig' })));
  const body = Buffer.from(JSON.stringify({ keys }));
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    if (req.url !== JWKS_PATH) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  // A client-credentials access token as an authorization server would issue it (RFC 9068 claims).
  const mint = (alg: JwtAlgorithm, kid: string, key: CryptoKey) =>
    new SignJWT({ client_id: agent, scope: 'items:read' })
      .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject(agent)
      .setIssuedAt()
      .setJti(`bench-${alg}`)
      .setExpirationTime('24h')
      .sign(key);
  const tokens = {} as Record<JwtAlgorithm, string>;
  const forged = {} as Record<JwtAlgorithm, string>;
  for (const p of pairs) {
    tokens[p.alg] = await mint(p.alg, p.kid, p.key.privateKey);
    forged[p.alg] = await mint(p.alg, p.kid, (await generateKeyPair(p.alg)).privateKey);
  }
  return {
    jwksUri: `http://127.0.0.1:${port}${JWKS_PATH}`,
    jwks: { keys },
    tokens,
    forged,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

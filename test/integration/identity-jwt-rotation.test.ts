/**
 * The authorization server rotates its signing key while the gateway runs (G19): a real
 * oidc-provider, asked on its stdin to sign with a new key, and the gateway's jose key set
 * (cached 10 minutes; an unknown kid refetches at most once every 30 s). Where the test needs
 * those 30 s or 10 minutes to pass, it moves the gateway's clock (Date.now, which jose's cache
 * reads) instead of waiting.
 */
import { decodeProtectedHeader } from 'jose';
import { startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';
import { clientCredentialsToken, type Issuer, rotateKeys, startIssuer } from '../helpers/oidc';

const AUDIENCE = 'https://gateway.test/';

const POLICY = `package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["support-bot reads tickets"]} if {
	input.agent.method == "jwt"
	input.agent.id == "support-bot"
}
`;

let issuer: Issuer;
let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  issuer = await startIssuer({ audiences: [AUDIENCE] });
  upstream = await startUpstream();
  gw = await startTestGateway({
    yaml: `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
identity:
  jwt:
    issuer: ${issuer.issuer}
    audience: ${AUDIENCE}
routes:
  - name: api
    prefix: /api/
    upstream: ${upstream.url}/
`,
    policies: { 'p.rego': POLICY },
  });
});

afterAll(async () => {
  jest.restoreAllMocks();
  issuer?.child.kill('SIGKILL');
  await gw?.close();
  await upstream?.close();
});

/** The key ids the issuer publishes right now. */
async function published(): Promise<string[]> {
  const jwks = (await (await fetch(`${issuer.issuer}/jwks`)).json()) as { keys: { kid: string }[] };
  return jwks.keys.map((k) => k.kid);
}

/** Calls through the gateway with a token; resolves with the status and, on a refusal, its code and reasons. */
async function call(bearer: string): Promise<{ status: number; code: string | null; reasons?: string[] }> {
  const res = await fetch(`${gw.gateway.url}/api/tickets/1`, { headers: { authorization: `Bearer ${bearer}` } });
  const code = res.headers.get('x-portcullis-error');
  const body = (await res.json()) as { error?: { reasons: string[] } };
  return { status: res.status, code, ...(body.error ? { reasons: body.error.reasons } : {}) };
}

/** Moves the clock every caller of Date.now sees (the gateway's key cache among them) forward by `ms`. */
function clockForward(ms: number): void {
  const now = Date.now.bind(Date);
  jest.spyOn(Date, 'now').mockImplementation(() => now() + ms);
}

test('G19: the issuer rotates its signing key mid-run; new tokens verify once the cooldown allows a refetch, old ones while their key is published, and not once it is dropped and the cache is stale', async () => {
  // Before the rotation: the gateway fetches the issuer's keys for its first token.
  const oldToken = await token();
  expect(decodeProtectedHeader(oldToken).kid).toBe('issuer-key-1');
  const firstFetch = Date.now();
  expect(await call(oldToken)).toMatchObject({ status: 200 });

  // The issuer signs with a new key and publishes both.
  expect(await rotateKeys(issuer, 'rotate')).toEqual({ signing: 'issuer-key-2', keys: ['issuer-key-2', 'issuer-key-1'] });
  expect(await published()).toEqual(['issuer-key-2', 'issuer-key-1']);
  const newToken = await token();
  expect(decodeProtectedHeader(newToken).kid).toBe('issuer-key-2');

  // Within 30 s of the gateway's last fetch, an unknown kid does not refetch (jose's cooldown,
  // which also caps what a flood of made-up kids costs): the new token is refused until then.
  expect(Date.now() - firstFetch).toBeLessThan(30_000);
  const before = upstream.received.length;
  expect(await call(newToken)).toEqual({ status: 401, code: 'PC_TOKEN_INVALID', reasons: ['token signing key unknown'] });
  expect(upstream.received.length).toBe(before);
  expect(await call(oldToken)).toMatchObject({ status: 200 });

  // Past the cooldown, the new kid refetches the set and verifies; the old key is still in it.
  clockForward(31_000);
  expect(await call(newToken)).toMatchObject({ status: 200 });
  expect(await call(oldToken)).toMatchObject({ status: 200 });

  // The issuer drops the old key. The gateway keeps the set it fetched until it goes stale
  // (10 minutes), so tokens of the dropped key keep verifying until then...
  expect(await rotateKeys(issuer, 'retire')).toEqual({ signing: 'issuer-key-2', keys: ['issuer-key-2'] });
  expect(await published()).toEqual(['issuer-key-2']);
  expect(await call(oldToken)).toMatchObject({ status: 200 });

  // ...and once it is stale, the refetched set has no such key: they are refused, new ones are not.
  jest.restoreAllMocks();
  clockForward(31_000 + 11 * 60_000);
  expect(await call(oldToken)).toEqual({ status: 401, code: 'PC_TOKEN_INVALID', reasons: ['token signing key unknown'] });
  expect(await call(newToken)).toMatchObject({ status: 200 });
});

/** A real access token from the issuer, by client credentials. */
function token(): Promise<string> {
  return clientCredentialsToken(issuer, { resource: AUDIENCE, scope: 'tickets:read' });
}

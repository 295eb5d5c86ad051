/**
 * The identify stage's logic (src/identity/): the methods are asked in order, null passes the
 * credential on, a refusal stops the call, and the header rules (form, size, query-string
 * tokens) hold before any method sees a token. G19 with the real issuer is
 * test/integration/identity-jwt.test.ts; these pin the order and the agent-key method.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../../src/errors';
import { apiKeyMethod } from '../../src/identity/api-key';
import { createAgentIdentifier } from '../../src/identity/identifier';
import { type IdentityMethod, plainIdentity } from '../../src/identity/identity-method';
import { spiffeIdOf, uriSans } from '../../src/identity/mtls';
import { agentKeyIdentity } from '../helpers/identity';

const agents = [
  { id: 'a', keySha256: createHash('sha256').update('key-a').digest() },
  { id: 'b', keySha256: createHash('sha256').update('key-b').digest() },
];

function codeOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not a GatewayError: ${String(err)}`;
  }
}

/** A stand-in token method that recognises tokens starting with "tok." and refuses "tok.bad". */
const tokenMethod: IdentityMethod = {
  name: 'jwt',
  identify: async ({ bearer }) => {
    if (!bearer.startsWith('tok.')) return null;
    if (bearer === 'tok.bad') throw new GatewayError('PC_TOKEN_INVALID', 'bad token');
    return plainIdentity(bearer.slice(4), 'jwt');
  },
};

describe('agent keys alone: the behaviour before identity methods, unchanged', () => {
  const id = createAgentIdentifier([apiKeyMethod(agents)]);

  test('a known key is its agent, with every other member empty', () => {
    expect(id.identify('Bearer key-b', '/x')).toEqual(agentKeyIdentity('b'));
    expect(id.identify('bearer   key-a ', '/x')).toMatchObject({ id: 'a' });
  });

  test('no Authorization is no identity; a malformed one or an unknown key is refused', () => {
    expect(id.identify(undefined, '/x')).toBeNull();
    expect(codeOf(() => id.identify('Basic a2V5', '/x'))).toBe('PC_BAD_AUTHORIZATION');
    expect(codeOf(() => id.identify('Bearer ', '/x'))).toBe('PC_BAD_AUTHORIZATION');
    expect(codeOf(() => id.identify('Bearer key c', '/x'))).toBe('PC_BAD_AUTHORIZATION');
    expect(codeOf(() => id.identify(`Bearer ${'k'.repeat(4097)}`, '/x'))).toBe('PC_BAD_AUTHORIZATION');
    expect(codeOf(() => id.identify('Bearer key-c', '/x'))).toBe('PC_UNKNOWN_AGENT');
  });

  test('without a token method, an access_token query parameter is not looked at', () => {
    expect(id.identify('Bearer key-a', '/x?access_token=1')).toMatchObject({ id: 'a' });
  });
});

describe('agent keys, then a token method', () => {
  const id = createAgentIdentifier([apiKeyMethod(agents), tokenMethod]);

  test('a key is decided by the key method, without a promise', () => {
    expect(id.identify('Bearer key-a', '/x')).toMatchObject({ id: 'a', method: 'api_key' });
  });

  test('what the key method does not recognise goes to the token method', async () => {
    await expect(id.identify('Bearer tok.support-bot', '/x')).resolves.toMatchObject({ id: 'support-bot', method: 'jwt' });
    await expect(id.identify('Bearer tok.bad', '/x')).rejects.toMatchObject({ code: 'PC_TOKEN_INVALID' });
    await expect(id.identify('Bearer neither', '/x')).rejects.toMatchObject({ code: 'PC_UNKNOWN_AGENT' });
  });

  test('G19: tokens over 8 KiB and tokens in the query string are refused before any method sees them', () => {
    expect(codeOf(() => id.identify(`Bearer tok.${'x'.repeat(8192)}`, '/x'))).toBe('PC_TOKEN_INVALID');
    expect(codeOf(() => id.identify(undefined, '/x?a=1&access_token=tok.support-bot'))).toBe('PC_TOKEN_INVALID');
    expect(codeOf(() => id.identify('Bearer key-a', '/x?access%5Ftoken=1'))).toBe('PC_TOKEN_INVALID');
  });
});

describe('mtls: the SPIFFE ID of a certificate (G22)', () => {
  const cert = (subjectaltname: string) => ({ subjectaltname }) as unknown as import('node:tls').PeerCertificate;
  test("the URI SANs are read from Node's text, quoted values included", () => {
    expect(uriSans(cert('DNS:a.example, URI:spiffe://example.org/x, IP Address:127.0.0.1'))).toEqual(['spiffe://example.org/x']);
    expect(uriSans(cert('URI:"spiffe://example.org/a,URI:spiffe://evil/b"'))).toEqual(['spiffe://example.org/a,URI:spiffe://evil/b']);
    // A quoted value of another type is not a URI SAN, whatever it holds.
    expect(uriSans(cert('DNS:"x.example, URI:spiffe://example.org/admin"'))).toEqual([]);
  });
  test('exactly one URI SAN, a spiffe:// ID with a path, in the trust domain', () => {
    expect(spiffeIdOf(cert('URI:spiffe://example.org/ns/prod/sa/bot'), 'example.org')).toBe('spiffe://example.org/ns/prod/sa/bot');
    for (const san of [
      '',
      'URI:spiffe://example.org/a, URI:spiffe://example.org/b',
      'URI:https://example.org/a',
      'URI:spiffe://example.org',
      'URI:spiffe://example.org/',
      'URI:spiffe://example.org/a/',
      'URI:spiffe://example.org/a//b',
      'URI:spiffe://example.org/a/../admin',
      'URI:spiffe://example.org/./a',
      'URI:spiffe://Example.org/a',
      'URI:spiffe://other.org/a',
      'URI:"spiffe://example.org/a,URI:spiffe://evil/b"',
    ])
      expect(() => spiffeIdOf(cert(san), 'example.org')).toThrow(expect.objectContaining({ code: 'PC_CLIENT_CERT_REQUIRED' }));
  });
});

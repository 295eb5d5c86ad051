/** Pure logic of the broker: the decision's credential choice (choose.ts) and the bounded masking of minted tokens (minted-tokens.ts). */
import { chooseCredential } from '../../src/credential-injector/choose';
import { MintedTokens, RECENT } from '../../src/credential-injector/minted-tokens';
import type { CredentialProvider } from '../../src/credential-injector/provider';
import type { Decision } from '../../src/policy/engine';

const provider = { name: 'crm', type: 'oauth2_client_credentials' } as unknown as CredentialProvider;
const route = { providers: new Map([['read', provider]]), defaultChoice: { provider, scopes: null } };
const decide = (extra: Record<string, unknown>): Decision => ({ allow: true, reasons: [], extra });

test('G28: decision scopes must be a non-empty list of scope strings; a narrower list is passed on, deduplicated', () => {
  expect(chooseCredential(route, decide({ credential: 'read', scopes: ['a', 'b', 'a'] }))).toEqual({ provider, scopes: ['a', 'b'] });
  for (const scopes of [[], 'a', [''], ['a b'], [1], Array.from({ length: 65 }, (_, i) => `s${i}`)])
    expect(() => chooseCredential(route, decide({ credential: 'read', scopes }))).toThrow(expect.objectContaining({ code: 'PC_POLICY_ERROR' }));
});

function masks(secrets: { masker: { maskBuffer(b: Uint8Array): boolean } }, text: string): boolean {
  return secrets.masker.maskBuffer(Buffer.from(text));
}

test('G24: each attachment masks its own token for as long as it is used, however many tokens are minted after it; the provider masks a bounded number', () => {
  const minted = new MintedTokens('x', ['client-secret-value-1']);
  const now = Date.now();
  minted.add('first-token-0123456789', now + 60_000, now);
  const first = minted.attachment('first-token-0123456789', ['a'], 'hmac:0');
  for (let i = 0; i < 3 * RECENT; i++) minted.add(`later-token-${i}-0123456789`, now + 60_000, now);
  expect(minted.liveCount).toBe(RECENT);
  expect(masks(first.secrets, 'echo first-token-0123456789')).toBe(true);
  expect(masks(first.secrets, 'echo client-secret-value-1')).toBe(true);
  // The provider's masker now covers the client secret and the most recent tokens only.
  expect(masks(minted.secrets, `echo later-token-${3 * RECENT - 1}-0123456789`)).toBe(true);
  expect(masks(minted.secrets, 'echo client-secret-value-1')).toBe(true);
  expect(masks(minted.secrets, 'echo first-token-0123456789')).toBe(false);
  // Expired tokens leave.
  minted.add('fresh-token-0123456789', now + 120_000, now + 61_000);
  expect(minted.liveCount).toBe(1);
});

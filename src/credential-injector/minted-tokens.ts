/**
 * What the OAuth providers share about the tokens they mint: each attached as a prebuilt,
 * frozen `Authorization: Bearer` attachment (a cached call allocates nothing), and every token
 * still valid kept in the provider's response masker, so an upstream that echoes the token it
 * got — or one it got a minute ago with other scopes — cannot hand it to the agent. A token
 * leaves the masker only once it has expired (pruned when the next one is minted).
 */
import { ResponseMasker } from './masker';
import type { Attachment, OutgoingRequest } from './provider';
import type { ResponseSecrets } from './injector';

/** The live tokens of one provider and the masker over them. */
export class MintedTokens {
  /** token → when it expires (ms). Private: never printed. */
  readonly #live = new Map<string, number>();
  /** Values masked whether or not a token is live (the client secret). */
  readonly #always: readonly string[];
  #masker: ResponseMasker;
  /** The provider's secrets: always the current masker (a getter, so attachments made earlier see later tokens too). */
  readonly secrets: ResponseSecrets;

  constructor(name: string, always: readonly string[]) {
    this.#always = always;
    this.#masker = new ResponseMasker(always);
    const self = this;
    this.secrets = Object.freeze({
      name,
      get masker() {
        return self.#masker;
      },
    });
  }

  /** Adds a minted token (until `expiresAtMs`) and rebuilds the masker; drops expired ones. */
  add(token: string, expiresAtMs: number, nowMs: number): void {
    for (const [t, exp] of this.#live) if (exp <= nowMs) this.#live.delete(t);
    this.#live.set(token, Math.max(expiresAtMs, this.#live.get(token) ?? 0));
    const tokens = [...this.#live.keys()];
    this.#masker = new ResponseMasker(
      [...this.#always, ...tokens],
      tokens.map((t) => `Bearer ${t}`),
    );
  }

  /** How many tokens are masked now (for tests and health; not secret). */
  get liveCount(): number {
    return this.#live.size;
  }

  /** A frozen attachment setting `Authorization: Bearer <token>`. */
  attachment(token: string, scopes: readonly string[], fingerprint: string): Attachment {
    const header = `Bearer ${token}`;
    return Object.freeze({
      apply(request: OutgoingRequest) {
        request.headers.authorization = header;
      },
      scopes: Object.freeze([...scopes]),
      fingerprint,
      secrets: this.secrets,
    });
  }
}

/**
 * What the OAuth providers share about the tokens they mint: each attached as a prebuilt,
 * frozen `Authorization: Bearer` attachment (a cached call allocates nothing), masked in the
 * answers of the calls it is attached to, with the client secret and the provider's most recent
 * other tokens, so an upstream that echoes the token it got — or one it got a moment ago with
 * other scopes or for another caller — cannot hand it to the agent.
 *
 * Bounded on purpose: each token's needles (every encoded form) are compiled once, when it is
 * minted, and a masker covers at most RECENT tokens, so minting costs the same however many
 * tokens are live. A masker over every live token would be rebuilt in time linear in their
 * number at each mint: a token exchange with many callers would stall the event loop.
 */
import { ResponseMasker } from './masker';
import { compileNeedles } from './needles';
import type { Attachment, OutgoingRequest } from './provider';
import type { ResponseSecrets } from './injector';

/** How many of the provider's latest tokens each masker covers besides the attached one. */
export const RECENT = 16;

interface Minted {
  readonly token: string;
  readonly expiresAtMs: number;
  readonly needles: readonly Buffer[];
}

/** The recent tokens of one provider and the masker over them. */
export class MintedTokens {
  /** The latest tokens, oldest first, at most RECENT. Private: never printed. */
  #recent: Minted[] = [];
  /** Needles of the values masked whether or not a token is live (the client secret). */
  readonly #always: readonly Buffer[];
  readonly #name: string;
  #masker: ResponseMasker;
  /** The provider's secrets now: the client secret and the recent tokens (a getter: always the current masker). */
  readonly secrets: ResponseSecrets;

  constructor(name: string, always: readonly string[]) {
    this.#name = name;
    this.#always = compileNeedles(always);
    this.#masker = new ResponseMasker([], [], null, this.#always);
    const self = this;
    this.secrets = Object.freeze({
      name,
      get masker() {
        return self.#masker;
      },
    });
  }

  /** Adds a minted token (until `expiresAtMs`): it joins the recent ones, expired ones leave. */
  add(token: string, expiresAtMs: number, nowMs: number): void {
    const kept = this.#recent.filter((m) => m.expiresAtMs > nowMs && m.token !== token);
    kept.push({ token, expiresAtMs, needles: compileNeedles([token], [`Bearer ${token}`]) });
    this.#recent = kept.slice(-RECENT);
    this.#masker = new ResponseMasker([], [], null, [...this.#always, ...this.#recent.flatMap((m) => m.needles)]);
  }

  /** How many tokens are masked now (for tests and health; not secret). */
  get liveCount(): number {
    return this.#recent.length;
  }

  /**
   * A frozen attachment setting `Authorization: Bearer <token>`, masked by the masker of the
   * moment it was minted (call right after add): it covers this token for as long as the
   * attachment is used, however many tokens come after it.
   */
  attachment(token: string, scopes: readonly string[], fingerprint: string): Attachment {
    const header = `Bearer ${token}`;
    const secrets: ResponseSecrets = Object.freeze({ name: this.#name, masker: this.#masker });
    return Object.freeze({
      apply(request: OutgoingRequest) {
        request.headers.authorization = header;
      },
      scopes: Object.freeze([...scopes]),
      fingerprint,
      secrets,
    });
  }
}

/**
 * The credential broker's one interface (docs/credentials.md). A credential provider is one
 * configured credential of one type (static secret, OAuth token, exchanged token, SigV4 keys,
 * upstream client certificate): one file per type beside this one, none inside src/proxy/.
 *
 * For an allowed call the `obtain-credential` stage asks the chosen provider for an Attachment
 * (cached: synchronous and allocation-free; to be fetched: a promise), the decision record names
 * its fingerprint, and only after that record is durable does `inject-credential` apply it to
 * the outgoing request. The attachment also says what the call's answer must not carry.
 */
import type { AgentIdentity } from '../identity/identity-method';
import type { ResponseSecrets } from './injector';

/** What a provider may know of the call it obtains a credential for. */
export interface CredentialCall {
  /** The caller, as identified; null when it presented nothing. */
  readonly identity: AgentIdentity | null;
  /** The caller's verified bearer token when a token identified it (the token exchange's subject_token); never logged. */
  readonly subjectToken: string | null;
  /** Scopes the decision asked for, narrower than the credential's configured ones; null: the configured ones. */
  readonly scopes: readonly string[] | null;
}

/** The request as it will be forwarded: what a signature covers. */
export interface OutgoingRequest {
  readonly method: string;
  /** The upstream's origin, e.g. https://s3.eu-west-1.amazonaws.com */
  readonly origin: string;
  /** Path and query exactly as forwarded. */
  readonly path: string;
  /** The outgoing headers (lower-case names); apply() adds to them. */
  readonly headers: Record<string, string>;
  /** The buffered body, exactly as forwarded. */
  readonly body: Buffer;
}

/** A credential ready to attach to one call. */
export interface Attachment {
  /**
   * Sets the credential on the outgoing request. Called once, after the decision record is
   * durable. A signature (aws_sigv4) is computed here, asynchronously: a promise then, which a
   * failure rejects with a GatewayError; static headers are set synchronously.
   */
  apply(request: OutgoingRequest): void | Promise<void>;
  /** The scopes the attached token carries (OAuth types); null for other types. */
  readonly scopes: readonly string[] | null;
  /** A fingerprint of what is attached (sha256:<first 16 hex> of the token or key id), for the audit record; never the value. */
  readonly fingerprint: string;
  /** What this call's answer must not carry: the provider's live values, the attached one included (read after apply). */
  readonly secrets: ResponseSecrets;
}

/** What /readyz and the metrics say of one credential. */
export interface CredentialHealth {
  readonly name: string;
  readonly type: string;
  /** false while the credential cannot be obtained (its last fetch failed and nothing cached is usable). */
  readonly ok: boolean;
  /** Fetches from a token endpoint or reads of a file since start. */
  readonly fetches: number;
  /** Calls answered from the cache. */
  readonly cacheHits: number;
  readonly failures: number;
  /** Seconds until the cached value expires; null when it does not (static secrets). */
  readonly expiresInS: number | null;
  /** The last failure, for operators (no secret in it); null when none. */
  readonly lastError: string | null;
}

/** One configured credential. */
export interface CredentialProvider {
  /** The name under `credentials:`. */
  readonly name: string;
  /** Its `type`. */
  readonly type: string;
  /**
   * Whether obtain() reads the caller (identity, subject token). When false, a call asking no
   * scopes gets one shared empty CredentialCall: the cached path allocates nothing.
   */
  readonly needsCaller: boolean;
  /**
   * The attachment for this call. Throws (or rejects with) a GatewayError
   * `PC_CREDENTIAL_UNAVAILABLE` when it cannot be obtained (the call is refused 503, audited,
   * nothing forwarded), or `PC_POLICY_ERROR` when the call asks for what it cannot grant.
   */
  obtain(call: CredentialCall): Attachment | Promise<Attachment>;
  /** The values answers must not carry right now (for routes that mask without attaching). */
  secrets(): ResponseSecrets;
  /** Health for /readyz and metrics. */
  health(): CredentialHealth;
  /** The TLS client certificate for the route's upstream connections (type mtls); absent otherwise. */
  readonly tls?: UpstreamTls;
  /** Stops watchers and timers. */
  close?(): void;
}

/** A client certificate (and optional CA pin) for the TLS connections to an upstream; reloaded on change. */
export interface UpstreamTls {
  /** The current PEM certificate, key and CA (null: the system roots). */
  current(): { readonly cert: string; readonly key: string; readonly ca: string | null };
  /** Called with no argument whenever the files changed and the new set is usable. Returns an unsubscribe. */
  onChange(listener: () => void): () => void;
}

/**
 * What an identity method is: one way an agent proves who it is (an agent key, a signed JWT).
 * The identify stage (src/proxy/pipeline.ts) asks each configured method in order about what the
 * request presents; a second method is a new file beside this one, not an edit across the tree.
 */

/** Who the caller is, as the policy sees it in `input.agent` (docs/policy.md). */
export interface AgentIdentity {
  /** The agent's id: what the audit trail, metrics, MCP sessions and `input.agent.id` name. */
  readonly id: string;
  /** The method that identified it: `api_key`, `jwt` or `mtls`. */
  readonly method: 'api_key' | 'jwt' | 'mtls';
  /** jwt: the token's `iss`; null for an agent key. */
  readonly issuer: string | null;
  /** jwt: the token's `sub`; null for an agent key. */
  readonly subject: string | null;
  /** jwt: the OAuth client the token was issued to (`client_id`, else `azp`); null otherwise. */
  readonly client_id: string | null;
  /** jwt: the token's scopes (`scope`, space-separated, or `scp`); empty for an agent key. */
  readonly scopes: readonly string[];
  /** jwt: the claims the configuration passes on (`claims_to_policy`); empty otherwise. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** jwt: whom the agent acts for (RFC 8693 `act.sub`, or the configured claim); null when it acts for itself. */
  readonly on_behalf_of: string | null;
  /** mtls: the client certificate's SPIFFE ID (its one spiffe:// URI SAN); null (or absent) otherwise. */
  readonly spiffe_id?: string | null;
  /** mtls: the SHA-256 fingerprint of the client certificate (hex, colon-separated); null (or absent) otherwise. */
  readonly cert_sha256?: string | null;
}

/** What a request presents for a method to look at. */
export interface PresentedCredentials {
  /** The token of `Authorization: Bearer <token>`, already checked for form and size. */
  readonly bearer: string;
  /** The resource identifier of the MCP route called (RFC 8707), also accepted as audience; null elsewhere. */
  readonly resource: string | null;
}

/** One way to identify an agent. */
export interface IdentityMethod {
  /** The method's name, as in `AgentIdentity.method`. */
  readonly name: AgentIdentity['method'];
  /**
   * The agent, or null when the method recognises nothing it could judge (another method's
   * credential). Throws a GatewayError when the credential is its kind but invalid.
   */
  identify(presented: PresentedCredentials): Promise<AgentIdentity | null> | AgentIdentity | null;
  /**
   * For a method judging the connection rather than a header (mtls): the agent its TLS socket
   * proves, or null when it presents nothing this method judges. Asked before any header.
   */
  identifyConnection?(socket: object): AgentIdentity | null;
}

/** An identity with every method-specific field empty, for methods that know only an id. */
export function plainIdentity(id: string, method: AgentIdentity['method']): AgentIdentity {
  return Object.freeze({
    id,
    method,
    issuer: null,
    subject: null,
    client_id: null,
    scopes: Object.freeze([]),
    claims: Object.freeze({}),
    on_behalf_of: null,
    spiffe_id: null,
    cert_sha256: null,
  });
}

/**
 * The validated, resolved, frozen configuration the gateway runs on. config/ is the ground
 * floor: these types use only src/errors.ts and src/secret.ts, nothing of the layers above.
 */
import type { ConfigLocation } from '../errors';
import type { Secret } from '../secret';

/** Upstream timeouts (ms). */
export interface Timeouts {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  /** Whole-call deadline, body included; 0 = none. */
  readonly totalMs: number;
}

/** How a static secret read from a file follows the file (docs/credentials.md, Rotation); env secrets cannot change. */
export interface SecretRotation {
  /** The secret file (absolute), watched and re-read on change. */
  readonly file: string;
  /** How long the previous value stays masked in answers after a rotation (s). */
  readonly graceS: number;
  /** Interval of the content check behind the directory watch (ms). */
  readonly pollMs: number;
}

/** type mtls: a client certificate for the TLS connections to a route's upstream; the files are watched. */
export interface MtlsCredential {
  readonly name: string;
  readonly type: 'mtls';
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA the upstream's certificate must chain to instead of the system roots; null: the system roots. */
  readonly caFile: string | null;
  readonly reloadPollMs: number;
}

/** A resolved credential: how to attach it and the secret values it attaches. */
export type Credential =
  | { readonly name: string; readonly type: 'bearer'; readonly token: Secret; readonly rotation: SecretRotation | null }
  | { readonly name: string; readonly type: 'header'; readonly header: string; readonly value: Secret; readonly rotation: SecretRotation | null }
  | { readonly name: string; readonly type: 'basic'; readonly username: string; readonly password: Secret; readonly rotation: SecretRotation | null }
  | MtlsCredential
  | OAuthClientCredentialsConfig
  | OAuthTokenExchangeConfig
  | AwsSigV4Credential;

/** How the gateway authenticates to a token endpoint (docs/credentials.md). */
export type TokenClientAuth =
  | { readonly method: 'client_secret_basic' | 'client_secret_post'; readonly secret: Secret }
  /** RFC 7523: a client assertion signed with this PEM private key. */
  | { readonly method: 'private_key_jwt'; readonly privateKey: Secret; readonly kid: string | null }
  /** RFC 8705: this client certificate on the TLS connection. */
  | { readonly method: 'tls_client_auth'; readonly cert: string; readonly key: Secret };

/** A token endpoint and what is asked of it: shared by both OAuth credential types. */
export interface TokenEndpointConfig {
  /** The token endpoint; null: from the issuer's discovery document. */
  readonly tokenUrl: string | null;
  /** Set when tokenUrl is null. */
  readonly issuer: string | null;
  readonly clientId: string;
  readonly auth: TokenClientAuth;
  /** PEM CAs for the token endpoint's TLS; null: the system roots. */
  readonly ca: string | null;
  /** The configured (maximum) scopes; the decision may narrow them. */
  readonly scope: readonly string[];
  readonly audience: string | null;
  readonly resource: string | null;
  readonly timeoutMs: number;
  readonly refreshBeforeS: number;
}

/** type oauth2_client_credentials: the gateway's own token by client credentials. */
export interface OAuthClientCredentialsConfig {
  readonly name: string;
  readonly type: 'oauth2_client_credentials';
  readonly endpoint: TokenEndpointConfig;
}

/** type oauth2_token_exchange (RFC 8693): the caller's verified token exchanged for one scoped to the upstream. */
export interface OAuthTokenExchangeConfig {
  readonly name: string;
  readonly type: 'oauth2_token_exchange';
  readonly endpoint: TokenEndpointConfig;
  /** The credential whose token is the actor_token; null: none is sent. */
  readonly actor: OAuthClientCredentialsConfig | null;
}

/** credentials.<name> of type aws_sigv4: keys that sign each call (docs/credentials.md). */
export interface AwsSigV4Credential {
  readonly name: string;
  readonly type: 'aws_sigv4';
  /** Signing name, e.g. s3. */
  readonly service: string;
  readonly region: string;
  readonly accessKeyId: Secret;
  readonly secretAccessKey: Secret;
  readonly sessionToken: Secret | null;
  /** Sign with a role's temporary credentials instead (STS AssumeRole with the keys above); null: sign with the keys. */
  readonly assumeRole: AssumeRoleConfig | null;
}

/** credentials.<name>.assume_role. */
export interface AssumeRoleConfig {
  readonly roleArn: string;
  readonly sessionName: string;
  readonly durationS: number;
  /** STS's origin, e.g. https://sts.eu-west-1.amazonaws.com */
  readonly stsEndpoint: string;
}

/** An agent allowed to call, identified by the SHA-256 of its bearer key. */
export interface AgentConfig {
  readonly id: string;
  readonly keySha256: Buffer;
}

/** identity.jwt: tokens from one issuer (docs/identity.md). */
export interface JwtIdentityConfig {
  readonly issuer: string;
  readonly audience: string;
  /** null: the jwks_uri of the issuer's discovery document. */
  readonly jwksUri: string | null;
  /** Asymmetric JWS algorithms only. */
  readonly algorithms: readonly string[];
  readonly clockSkewS: number;
  readonly requiredClaims: readonly string[];
  /** Claim (or dotted path) holding the agent id. */
  readonly agentClaim: string;
  /** Claim (or dotted path) naming whom the agent acts for. */
  readonly onBehalfOfClaim: string;
  readonly claimsToPolicy: readonly string[];
  /** Scopes every token must carry. */
  readonly requiredScopes: readonly string[];
  /** The gateway's public base URL (no trailing slash); null: the agent listener's address. */
  readonly resource: string | null;
  /** A call without Authorization is refused (PC_TOKEN_REQUIRED) rather than anonymous. */
  readonly required: boolean;
}

/** A local MCP server the gateway runs over stdio (docs/mcp-stdio.md). */
export interface StdioServerConfig {
  readonly command: readonly string[];
  /** The server's own variables; secrets stay wrapped until the child is spawned. */
  readonly env: Readonly<Record<string, string | Secret>>;
  readonly cwd: string;
  readonly restart: { readonly initialDelayMs: number; readonly maxDelayMs: number };
  /** Where `command` is in the file, for the error when it cannot be run. */
  readonly where: ConfigLocation;
}

/** What a route of kind mcp adds. */
export interface McpRouteConfig {
  /** How a denied tools/call is answered: an isError tool result, or a JSON-RPC error. */
  readonly denyAs: 'result' | 'error';
  /** The server's endpoint path upstream (the whole path: MCP routes have one endpoint). */
  readonly endpoint: string;
  /** Set when the gateway runs the server itself; then `origin` is a placeholder. */
  readonly stdio: StdioServerConfig | null;
}

/** A route: a path prefix mapped to an upstream base URL. */
export interface RouteConfig {
  readonly name: string;
  readonly prefix: string;
  readonly kind: 'http' | 'mcp';
  /** Set exactly when kind is mcp. */
  readonly mcp: McpRouteConfig | null;
  /** Upstream origin, e.g. https://api.github.com */
  readonly origin: string;
  /** Upstream base path, always ending with '/'. */
  readonly basePath: string;
  /** The credential a call gets when the decision names none (`credential`, or `credentials` with `default_credential`); null: none. */
  readonly credential: Credential | null;
  /**
   * The credentials the decision may choose from, by the route's label (routes[].credentials);
   * a route with one `credential` has it under its own name. Empty: the route has none.
   */
  readonly credentialChoices: ReadonlyMap<string, Credential>;
  /** Headers a credential of the route travels in (lower-case), which the agent may not send. */
  readonly credentialHeaders: readonly string[];
  /** Header name prefixes the agent may not send (lower-case): `x-amz-` on a route with a SigV4 credential, whose signature covers them. */
  readonly credentialHeaderPrefixes: readonly string[];
  readonly timeouts: Timeouts;
  /**
   * Whether the agent's Range and If-Range reach the upstream (and the policy). False on routes
   * with a credential and on MCP routes unless `forward_range: true`; true everywhere else.
   */
  readonly forwardRange: boolean;
  /** Who may call this route: the gateway's identity settings, narrowed by the route's `identity:`. */
  readonly identity: RouteIdentityConfig;
  /** routes[].audit_body: the decision record keeps the JSON request body in its input (masked). */
  readonly auditBody: boolean;
  /** enforce, or dry_run: the policy's verdict is recorded (enforced: false) and not enforced. */
  readonly mode: 'enforce' | 'dry_run';
  /** The shadow policy judged beside the enforcing one: the route's shadow_policy, else policy.shadow; null: none. */
  readonly shadowPolicy: PolicyConfig | null;
}

/** An identity method's name, as configured and as `input.agent.method` says it. */
export type IdentityMethodName = 'api_key' | 'jwt' | 'mtls';

/** routes[].identity, resolved against the gateway's identity settings (docs/identity.md). */
export interface RouteIdentityConfig {
  /** The methods whose identities this route accepts: every configured one unless the route narrows them. */
  readonly methods: readonly IdentityMethodName[];
  /** A call without any credential is refused 401 PC_TOKEN_REQUIRED (default: identity.jwt.required). */
  readonly required: boolean;
  /** Scopes a token must carry on this route (default: identity.jwt.required_scopes). */
  readonly requiredScopes: readonly string[];
}

/** TLS client settings of an audit sink, files already read. */
export interface SinkTlsConfig {
  /** PEM of the CAs to trust instead of the system roots, or null. */
  readonly ca: string | null;
  /** PEM client certificate and its key, or null. */
  readonly cert: string | null;
  readonly key: Secret | null;
  readonly servername: string | null;
}

/** Keys every audit sink has. */
interface SinkCommonConfig {
  readonly name: string;
  /** Longest wait between retries (ms). */
  readonly maxBackoffMs: number;
}

/** Syslog (RFC 5424) over TCP, optionally TLS. */
export interface SyslogSinkConfig extends SinkCommonConfig {
  readonly type: 'syslog';
  readonly host: string;
  readonly port: number;
  readonly tls: SinkTlsConfig | null;
  readonly facility: number;
  readonly appName: string;
  /** null: os.hostname(). */
  readonly hostname: string | null;
  readonly bom: boolean;
  readonly confirmMs: number;
  readonly connectTimeoutMs: number;
}

/** A generic JSON webhook. */
export interface WebhookSinkConfig extends SinkCommonConfig {
  readonly type: 'webhook';
  readonly url: string;
  readonly headers: Readonly<Record<string, string | Secret>>;
  readonly format: 'json' | 'ndjson';
  readonly timeoutMs: number;
  readonly tls: SinkTlsConfig | null;
}

/** Splunk HTTP Event Collector. */
export interface SplunkHecSinkConfig extends SinkCommonConfig {
  readonly type: 'splunk_hec';
  readonly url: string;
  readonly token: Secret;
  readonly index: string | null;
  readonly source: string;
  readonly sourcetype: string;
  /** null: os.hostname(). */
  readonly host: string | null;
  readonly timeoutMs: number;
  readonly tls: SinkTlsConfig | null;
}

/** An audit sink (docs/audit-sinks.md). */
export type SinkConfig = SyslogSinkConfig | WebhookSinkConfig | SplunkHecSinkConfig;

/** Where a listener listens: a TCP address, or a Unix socket file with its permissions. */
export type ListenAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string; readonly mode: number };

/** A listener: its address and who it answers to (G20). */
export interface ListenerConfig {
  readonly address: ListenAddress;
  /** allowed_hosts as written (lower case), or null for the default of the address bound. */
  readonly allowedHosts: readonly { readonly host: string; readonly port: number | null }[] | null;
  /** allowed_origins, normalised (`scheme://host[:port]`), or null for the default. */
  readonly allowedOrigins: readonly string[] | null;
  /** Where its `listen` key is, for errors found when it is bound (a socket path in use). */
  readonly where: ConfigLocation;
}

/** tls: the agent listener's certificate files (docs/identity.md); read and watched by src/edge/tls.ts. */
export interface AgentTlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA bundle client certificates must chain to, or null when none are asked for. */
  readonly clientCaFile: string | null;
  readonly clientAuth: 'required' | 'optional';
  readonly reloadPollMs: number;
}

/** identity.mtls: agents identified by their verified client certificate. */
export interface MtlsIdentityConfig {
  readonly idFrom: 'spiffe' | 'subject_cn';
  readonly trustDomain: string | null;
}

/** The whole gateway configuration. */
/** A policy to load: the enforcing one (`policy`) or a shadow (`policy.shadow`, `routes[].shadow_policy`). */
export interface PolicyConfig {
  readonly path: string;
  readonly entrypoint: string;
  readonly watch: boolean;
  /** Interval of the content-hash poll behind the file watches (ms). */
  readonly pollMs: number;
  readonly opa: string | null;
  /** require_tests: its own tests must pass before a policy goes into force. */
  readonly requireTests: boolean;
  /** signing: the bundle at path must be signed by this key; null: signatures are not checked. */
  readonly signing: PolicySigningConfig | null;
  /** bundle: pulled from a bundle server instead of read from path (path is then its persisted copy); null: path. */
  readonly bundle: BundleServiceConfig | null;
}

/** policy.bundle: a bundle server (OPA's bundle service API). */
export interface BundleServiceConfig {
  readonly url: URL;
  readonly minDelayS: number;
  readonly maxDelayS: number;
  readonly token: Secret | null;
  readonly tls: { readonly ca: Buffer | null; readonly cert: Buffer | null; readonly key: Buffer | null } | null;
  readonly persistDir: string;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

/** policy.signing: the key a bundle's signature is verified with. */
export interface PolicySigningConfig {
  readonly algorithm: string;
  /** The PEM of the public key (asymmetric algorithms), or the HMAC secret. */
  readonly key: { readonly pem: string; readonly file: string } | { readonly secret: Secret };
  readonly keyId: string;
  readonly scope: string | null;
  readonly excludeFiles: readonly string[];
}

export interface GatewayConfig {
  /** The file it was loaded from (absolute), or '<embedded>'. */
  readonly file: string;
  /** False when loaded with `secrets: 'skip'`: every Secret is a placeholder, and the gateway refuses to start on it. */
  readonly secretsLoaded: boolean;
  readonly listen: ListenerConfig;
  /** TLS of the agent listener, or null for plain HTTP. */
  readonly tls: AgentTlsConfig | null;
  readonly admin: ListenerConfig & {
    readonly enabled: boolean;
    /** admin.token: the auditor's view on the admin listener, behind it; null: no view. */
    readonly token: Secret | null;
  };
  readonly policy: PolicyConfig & {
    /** policy.shadow: judged beside the enforcing policy on every route without its own shadow_policy; null: none. */
    readonly shadow: PolicyConfig | null;
  };
  readonly audit: {
    readonly path: string;
    readonly durability: 'strict' | 'relaxed';
    /**
     * The configured checkpoint signing key (its text; the gateway parses it before anything
     * else starts), or null to use (or generate) `keyFile`.
     */
    readonly signingKey: { readonly secret: Secret; readonly where: ConfigLocation } | null;
    readonly keyFile: string;
    readonly checkpoint: { readonly everyRecords: number; readonly everySeconds: number };
    readonly rotate: { readonly maxBytes: number; readonly maxAgeSeconds: number };
    /** Zeros kept ahead of the newest segment's last record (0: append). */
    readonly preallocateBytes: number;
    readonly sinks: readonly SinkConfig[];
  };
  readonly limits: { readonly maxBodyBytes: number };
  readonly logLevel: string;
  readonly agents: readonly AgentConfig[];
  /** Identity methods besides agent keys; null when not configured. */
  readonly identity: { readonly jwt: JwtIdentityConfig | null; readonly mtls: MtlsIdentityConfig | null };
  readonly routes: readonly RouteConfig[];
}

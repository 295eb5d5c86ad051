/**
 * The configuration schema: the single source of truth for what portcullis.yaml may contain.
 * It is published as schema/portcullis.schema.json for editors (`npm run schema` regenerates it;
 * a test fails when the published file is stale).
 */

/**
 * `x-expected` is an annotation of this schema (Ajv is told it exists, editors ignore it): what a
 * value must look like, as a noun phrase, so a refusal can say `prefix "gh" is not <x-expected>`
 * instead of repeating a regular expression.
 */
export const EXPECTED = 'x-expected';

const hostPort = {
  type: 'string',
  pattern: '^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
  [EXPECTED]: 'host:port, e.g. 127.0.0.1:8080',
  description: 'host:port to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).',
} as const;

/** A listener's address: host:port, or a Unix socket. */
const listenAddress = {
  type: 'string',
  pattern: '^((\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}|unix:[^\\x00]+)$',
  [EXPECTED]: 'host:port (e.g. 127.0.0.1:8080) or unix:PATH (e.g. unix:/run/portcullis/portcullis.sock)',
} as const;

/** Who a listener answers to (docs/guarantees.md G20); no default keyword, since the default depends on the address bound. */
const edgeKeys = {
  allowed_hosts: {
    type: 'array',
    items: {
      type: 'string',
      pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$',
      [EXPECTED]: 'a host name or address, with an optional :port (e.g. gw.internal or gw.internal:8080)',
    },
    description:
      'Host header values this listener answers to; any other Host gets 403 PC_BAD_HOST. An entry without a port allows any port. Replaces the default: the listen address and localhost, 127.0.0.1, [::1], each with the listening port (on a wildcard address also every interface address; on a Unix socket: localhost).',
  },
  allowed_origins: {
    type: 'array',
    items: {
      type: 'string',
      pattern: '^https?://(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$',
      [EXPECTED]: 'an origin: http(s)://host[:port], no path',
    },
    description:
      'Origin header values this listener accepts; a request with another Origin gets 403 PC_BAD_ORIGIN (a request without one is judged on Host alone). Default: http:// and an allowed Host.',
  },
  socket_mode: {
    type: 'string',
    pattern: '^0?[0-7]{3}$',
    [EXPECTED]: 'an octal file mode in quotes, e.g. "0660"',
    default: '0660',
    description: 'With a unix: listen address: the permissions of the socket file (who may connect).',
  },
} as const;

const envName = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$', [EXPECTED]: 'an environment variable name (letters, digits, _)' } as const;
const headerName = { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", [EXPECTED]: 'an HTTP header name' } as const;
const httpUrl = { type: 'string', pattern: '^https?://', [EXPECTED]: 'an http(s) URL' } as const;

const timeoutKeys = {
  connect_ms: { type: 'integer', minimum: 1, description: 'TCP/TLS connect timeout.' },
  headers_ms: { type: 'integer', minimum: 1, description: 'Time to the upstream response headers.' },
  idle_ms: { type: 'integer', minimum: 0, description: 'Longest silence on a response body (SSE streams included); 0 disables.' },
  total_ms: {
    type: 'integer',
    minimum: 0,
    description:
      'Longest a whole call may take, body included, so an upstream that trickles bytes cannot hold it open; 0 disables (for long-lived event streams).',
  },
} as const;

/** The gateway-wide timeouts, with their defaults. */
const timeouts = {
  type: 'object',
  additionalProperties: false,
  default: {},
  description: 'Upstream timeouts in milliseconds, for every route.',
  properties: {
    connect_ms: { ...timeoutKeys.connect_ms, default: 5000 },
    headers_ms: { ...timeoutKeys.headers_ms, default: 30000 },
    idle_ms: { ...timeoutKeys.idle_ms, default: 300000 },
    total_ms: { ...timeoutKeys.total_ms, default: 900000 },
  },
} as const;

/** A route's own timeouts: no defaults, since an absent key means the gateway-wide value. */
const routeTimeouts = {
  type: 'object',
  additionalProperties: false,
  description: "This route's upstream timeouts in milliseconds; an absent key takes the value of the top-level timeouts.",
  properties: timeoutKeys,
} as const;

const secretRef = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  [EXPECTED]: 'a secret reference: {env: NAME} or {file: PATH}',
  description: 'A secret read at start-up, never written in this file: {env: NAME} or {file: PATH}.',
  properties: { env: envName, file: { type: 'string', minLength: 1 } },
} as const;

const sinkTls = {
  type: 'object',
  additionalProperties: false,
  description: 'TLS settings of the connection to the receiver (for syslog, its presence turns TLS on). The receiver certificate is always verified.',
  properties: {
    ca: { type: 'string', minLength: 1, description: 'PEM file of the CA certificates to trust instead of the system roots (a private or self-signed CA).' },
    cert: { type: 'string', minLength: 1, description: 'PEM file of a client certificate, for receivers that authenticate senders (needs key).' },
    key: { type: 'string', minLength: 1, description: "PEM file of the client certificate's private key." },
    servername: { type: 'string', minLength: 1, description: 'Name the receiver certificate must carry (and SNI). Default: the host of the address or URL.' },
  },
} as const;

const sinkCommon = {
  name: {
    type: 'string',
    pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
    [EXPECTED]: 'a name of letters, digits, _ . - (at most 64, not starting with _ . -)',
    description: 'Unique name: the label in logs and metrics, and the position file <audit.path>/sinks/<name>.offset.',
  },
  max_backoff_ms: { type: 'integer', minimum: 100, default: 30000, description: 'Longest wait between retries while the receiver is down or failing.' },
} as const;

const httpSinkCommon = {
  url: { ...httpUrl, description: 'Receiver URL (http or https); a 3xx is a failure, redirects are not followed.' },
  timeout_ms: { type: 'integer', minimum: 1, default: 10000, description: 'Longest time for one delivery attempt (connect, send, answer).' },
  tls: sinkTls,
} as const;

const syslogSinkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'address'],
  properties: {
    ...sinkCommon,
    type: { const: 'syslog', description: 'RFC 5424 over TCP with octet-counting framing (RFC 6587), TLS with tls: (RFC 5425).' },
    address: { ...hostPort, description: 'host:port of the syslog receiver, e.g. logs.example.com:6514.' },
    tls: sinkTls,
    facility: { type: 'integer', minimum: 0, maximum: 23, default: 13, description: 'Syslog facility (13: log audit).' },
    app_name: {
      type: 'string',
      pattern: '^[!-~]{1,48}$',
      [EXPECTED]: 'at most 48 printable ASCII characters, no spaces',
      default: 'portcullis',
      description: 'APP-NAME header field (printable ASCII, no spaces).',
    },
    hostname: {
      type: 'string',
      pattern: '^[!-~]{1,255}$',
      [EXPECTED]: 'at most 255 printable ASCII characters, no spaces',
      description: "HOSTNAME header field. Default: the machine's host name.",
    },
    bom: {
      type: 'boolean',
      default: false,
      description: 'Start MSG with a UTF-8 BOM (RFC 5424 MSG-UTF8). Off (MSG-ANY) by default: most receivers keep the BOM in front of the JSON.',
    },
    confirm_ms: {
      type: 'integer',
      minimum: 0,
      default: 200,
      description: 'A batch counts as delivered when the connection is still open this long after it was written (TCP syslog has no acknowledgement).',
    },
    connect_timeout_ms: { type: 'integer', minimum: 1, default: 5000, description: 'Connect and TLS handshake timeout.' },
  },
} as const;

const webhookSinkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'url'],
  properties: {
    ...sinkCommon,
    type: { const: 'webhook', description: 'POST each batch to url; any 2xx acknowledges it.' },
    ...httpSinkCommon,
    headers: {
      type: 'object',
      default: {},
      description: 'Extra request headers. A value is a string, or a secret {env: NAME} / {file: PATH} (never logged).',
      propertyNames: headerName,
      additionalProperties: { anyOf: [{ type: 'string' }, secretRef], [EXPECTED]: 'a string or a secret reference {env: NAME} / {file: PATH}' },
    },
    format: {
      enum: ['json', 'ndjson'],
      default: 'json',
      description: 'json: {"records": [...]}; ndjson: one record line per line, byte for byte as in the trail.',
    },
  },
} as const;

const splunkHecSinkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'url', 'token'],
  properties: {
    ...sinkCommon,
    type: { const: 'splunk_hec', description: 'Splunk HTTP Event Collector; url is e.g. https://splunk:8088/services/collector/event.' },
    ...httpSinkCommon,
    token: { ...secretRef, description: 'The HEC token: {env: NAME} or {file: PATH}.' },
    index: { type: 'string', minLength: 1, description: "Splunk index. Default: the token's default index." },
    source: { type: 'string', minLength: 1, default: 'portcullis', description: 'Event source.' },
    sourcetype: { type: 'string', minLength: 1, default: 'portcullis:audit', description: 'Event sourcetype.' },
    host: { type: 'string', minLength: 1, description: "Event host. Default: the machine's host name." },
  },
} as const;

/** One entry of audit.sinks: the `type` picks the schema, so errors name that type's keys. */
const auditSink = {
  type: 'object',
  required: ['name', 'type'],
  properties: { type: { enum: ['syslog', 'webhook', 'splunk_hec'], description: 'The kind of receiver.' } },
  allOf: [
    { if: { properties: { type: { const: 'syslog' } }, required: ['type'] }, then: syslogSinkSchema },
    { if: { properties: { type: { const: 'webhook' } }, required: ['type'] }, then: webhookSinkSchema },
    { if: { properties: { type: { const: 'splunk_hec' } }, required: ['type'] }, then: splunkHecSinkSchema },
  ],
} as const;

const pemFile = {
  type: 'object',
  additionalProperties: false,
  required: ['file'],
  [EXPECTED]: 'a file reference {file: PATH}',
  properties: { file: { type: 'string', minLength: 1, description: 'PEM file, relative to this file.' } },
} as const;

const secretFile = { type: 'string', minLength: 1 } as const;

const oauthScope = {
  type: 'string',
  pattern: '^[!#-\\[\\]-~]{1,128}$',
  [EXPECTED]: 'an OAuth scope (printable ASCII, no spaces, quotes or backslashes)',
} as const;

/** What both OAuth credential types say about their token endpoint and how the gateway authenticates to it (docs/credentials.md). */
const tokenEndpointKeys = {
  token_url: { ...httpUrl, description: "The authorization server's token endpoint. Either this or issuer." },
  issuer: {
    ...httpUrl,
    description:
      "The authorization server's issuer: the token endpoint is read from its discovery document (/.well-known/openid-configuration, else /.well-known/oauth-authorization-server), whose issuer must be this one. Either this or token_url.",
  },
  client_id: { type: 'string', minLength: 1, description: "The gateway's client id at the authorization server." },
  auth_method: {
    enum: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth'],
    default: 'client_secret_basic',
    description:
      'How the gateway authenticates to the token endpoint: the client secret in Basic (client_secret_basic) or in the form (client_secret_post), a signed client assertion (private_key_jwt, RFC 7523), or a client certificate (tls_client_auth, RFC 8705).',
  },
  client_secret_env: { ...envName, description: 'client_secret_basic / client_secret_post: the environment variable holding the client secret.' },
  client_secret_file: { ...secretFile, description: 'client_secret_basic / client_secret_post: a file holding the client secret (one line).' },
  private_key_file: { ...secretFile, description: 'private_key_jwt: PEM private key (RSA, EC P-256/P-384 or Ed25519) that signs the client assertion.' },
  kid: { type: 'string', minLength: 1, description: "private_key_jwt: the key id put in the assertion's header." },
  client_cert_file: { ...secretFile, description: 'tls_client_auth: PEM client certificate presented to the token endpoint.' },
  client_key_file: { ...secretFile, description: 'tls_client_auth: PEM private key of client_cert_file.' },
  ca_file: { ...secretFile, description: "PEM CA bundle the token endpoint's TLS certificate must chain to. Default: the system roots." },
  scope: {
    type: 'array',
    default: [],
    uniqueItems: true,
    items: oauthScope,
    description: 'The scopes asked for; a decision may ask for a subset, never more.',
  },
  audience: { type: 'string', minLength: 1, description: 'The audience parameter sent to the token endpoint.' },
  resource: {
    type: 'string',
    pattern: '^[A-Za-z][A-Za-z0-9+.-]*:[^#\\s]+$',
    [EXPECTED]: 'an absolute URI without a fragment',
    description: 'The resource indicator sent to the token endpoint (RFC 8707).',
  },
  timeout_ms: {
    type: 'integer',
    minimum: 1,
    maximum: 60000,
    default: 5000,
    description: 'Longest wait for the token endpoint (and discovery); then the call is refused 503.',
  },
  refresh_before_s: {
    type: 'integer',
    minimum: 0,
    maximum: 86400,
    default: 60,
    description: 'A token is refreshed this long before it expires (at most half its lifetime before).',
  },
} as const;

/** The keys of a static secret read from a file that say how it rotates (docs/credentials.md, Rotation). */
const rotation = {
  rotation_grace_s: {
    type: 'integer',
    minimum: 0,
    maximum: 86400,
    default: 300,
    description:
      'With a file secret: after the file changes, how long the previous value is still masked in answers (s). The new value is attached from the next call. An env secret cannot change while the gateway runs.',
  },
  reload_poll_ms: {
    type: 'integer',
    minimum: 100,
    default: 2000,
    description: 'With a file secret: interval of the content check behind the file watch (ms).',
  },
} as const;

/** One entry of credentials: the `type` picks the schema, so errors name that type's keys. */
const credential = {
  type: 'object',
  required: ['type'],
  properties: {
    type: {
      enum: ['bearer', 'header', 'basic', 'oauth2_client_credentials', 'oauth2_token_exchange', 'aws_sigv4', 'mtls'],
      description: 'How the credential is attached.',
    },
  },
  allOf: [
    {
      if: { properties: { type: { const: 'bearer' } }, required: ['type'] },
      then: {
        type: 'object',
        additionalProperties: false,
        required: ['type'],
        properties: { type: { const: 'bearer' }, env: envName, file: secretFile, ...rotation },
      },
    },
    {
      if: { properties: { type: { const: 'header' } }, required: ['type'] },
      then: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'header'],
        properties: { type: { const: 'header' }, header: headerName, env: envName, file: secretFile, ...rotation },
      },
    },
    {
      if: { properties: { type: { const: 'basic' } }, required: ['type'] },
      then: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'username'],
        properties: {
          type: { const: 'basic' },
          username: { type: 'string', minLength: 1, pattern: '^[^:]*$', [EXPECTED]: 'a user name without ":"' },
          password_env: envName,
          password_file: secretFile,
          ...rotation,
        },
      },
    },
    {
      if: { properties: { type: { const: 'mtls' } }, required: ['type'] },
      then: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'cert', 'key'],
        description:
          "A client certificate on the TLS connections to the upstream of the route naming it (that route's only credential). The files are watched; new connections use changed ones, a bad new set keeps the old one (logged).",
        properties: {
          type: { const: 'mtls' },
          cert: { ...pemFile, description: 'PEM file of the client certificate (and its chain): {file: PATH}.' },
          key: { ...pemFile, description: "PEM file of the client certificate's private key: {file: PATH}." },
          ca: {
            ...pemFile,
            description: "PEM file of the CA the upstream's certificate must chain to, instead of the system roots (a pin): {file: PATH}.",
          },
          reload_poll_ms: { type: 'integer', minimum: 100, default: 2000, description: 'Interval of the content check behind the file watches (ms).' },
        },
      },
    },
    {
      if: { properties: { type: { const: 'oauth2_client_credentials' } }, required: ['type'] },
      then: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'client_id'],
        properties: { type: { const: 'oauth2_client_credentials' }, ...tokenEndpointKeys },
      },
    },
    {
      if: { properties: { type: { const: 'oauth2_token_exchange' } }, required: ['type'] },
      then: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'client_id'],
        properties: {
          type: { const: 'oauth2_token_exchange' },
          ...tokenEndpointKeys,
          actor: {
            type: 'string',
            minLength: 1,
            description:
              'Optional: the name of an oauth2_client_credentials credential whose token is sent as the actor_token (the gateway acting for the caller).',
          },
        },
      },
    },
    {
      if: { properties: { type: { const: 'aws_sigv4' } }, required: ['type'] },
      then: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'service', 'region'],
        properties: {
          type: { const: 'aws_sigv4', description: 'AWS Signature Version 4: each allowed call is signed as forwarded (docs/credentials.md).' },
          service: {
            type: 'string',
            pattern: '^[a-z0-9-]+$',
            [EXPECTED]: 'an AWS signing name in lower case, e.g. s3, execute-api, sts',
            description: 'The signing name of the service (s3 signs its path as sent; every other service double-encodes it).',
          },
          region: { type: 'string', pattern: '^[a-z0-9-]+$', [EXPECTED]: 'an AWS region, e.g. eu-west-1', description: 'The signing region.' },
          access_key_id_env: envName,
          access_key_id_file: secretFile,
          secret_access_key_env: envName,
          secret_access_key_file: secretFile,
          session_token_env: envName,
          session_token_file: secretFile,
          assume_role: {
            type: 'object',
            additionalProperties: false,
            required: ['role_arn'],
            description:
              "Sign with a role's temporary credentials, obtained from STS AssumeRole with the keys above and cached until shortly before they expire.",
            properties: {
              role_arn: {
                type: 'string',
                pattern: '^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\\w+=,.@/-]+$',
                [EXPECTED]: 'a role ARN, e.g. arn:aws:iam::123456789012:role/agent-reader',
              },
              session_name: {
                type: 'string',
                pattern: '^[\\w+=,.@-]{2,64}$',
                [EXPECTED]: 'a role session name: 2–64 of letters, digits and +=,.@-_',
                default: 'portcullis',
              },
              duration_s: { type: 'integer', minimum: 900, maximum: 43200, default: 3600, description: 'Lifetime asked of STS, seconds.' },
              sts_endpoint: {
                type: 'string',
                pattern: '^https?://[^/?#]+/?$',
                [EXPECTED]: 'an http(s) origin, e.g. https://sts.eu-west-1.amazonaws.com',
                description: "STS's endpoint. Default: https://sts.<region>.amazonaws.com.",
              },
            },
          },
        },
      },
    },
  ],
} as const;

/** The signature algorithms a JWT may use: asymmetric only (`none` and HS* are refused at load). */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

const claimName = {
  type: 'string',
  pattern: '^[A-Za-z0-9_:/-]{1,128}(\\.[A-Za-z0-9_:/-]{1,128}){0,3}$',
  [EXPECTED]: 'a claim name, or a dotted path such as act.sub',
} as const;

/** routes[].identity: who may call one route, narrowing the gateway's identity settings. */
const routeIdentity = {
  type: 'object',
  additionalProperties: false,
  description: "Who may call this route: a subset of the gateway's identity methods, and the route's own token requirements.",
  properties: {
    methods: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { enum: ['api_key', 'jwt', 'mtls'], [EXPECTED]: 'an identity method: api_key, jwt or mtls' },
      description:
        'The identity methods accepted here (each must be configured for the gateway). An identity proved another way is refused 401 PC_IDENTITY_NOT_ACCEPTED. Default: all configured.',
    },
    required: {
      type: 'boolean',
      description:
        'A call without a credential is refused 401 PC_TOKEN_REQUIRED instead of reaching the policy as input.agent null. Default: identity.jwt.required.',
    },
    required_scopes: {
      type: 'array',
      items: oauthScope,
      description:
        "Scopes a token must carry on this route, instead of identity.jwt.required_scopes (needs identity.jwt). Other methods' identities carry no scopes.",
    },
  },
} as const;

/** identity.jwt: agents presenting a signed JWT access token (docs/identity.md). */
const jwtIdentity = {
  type: 'object',
  additionalProperties: false,
  required: ['issuer', 'audience'],
  description: 'Accept signed JWTs (OAuth access tokens) from one issuer as agent identities, verified with its published keys.',
  properties: {
    issuer: {
      ...httpUrl,
      description: "The issuer the token's iss must equal exactly; its /.well-known/openid-configuration names the keys unless jwks_uri is set.",
    },
    audience: {
      type: 'string',
      minLength: 1,
      description: "What the token's aud must contain: this gateway's resource identifier. Required: a token for another service must not work here.",
    },
    jwks_uri: { ...httpUrl, description: "URL of the issuer's JSON Web Key Set. Default: the jwks_uri of the issuer's discovery document." },
    algorithms: {
      type: 'array',
      minItems: 1,
      items: { enum: JWT_ALGORITHMS, [EXPECTED]: 'an asymmetric JWS algorithm (none and HS256/384/512 are refused)' },
      default: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      description: 'The signature algorithms accepted. Asymmetric only: none and the HMAC algorithms (which a public key could be used to forge) are refused.',
    },
    clock_skew_s: { type: 'integer', minimum: 0, maximum: 300, default: 30, description: 'Leeway for exp and nbf, in seconds (at most 300).' },
    required_claims: { type: 'array', default: [], items: claimName, description: 'Claims the token must carry besides exp, iss and aud.' },
    agent_claim: {
      ...claimName,
      default: 'sub',
      description: 'The claim whose value is the agent id (input.agent.id): sub, azp, client_id, or another claim.',
    },
    on_behalf_of_claim: {
      ...claimName,
      default: 'act.sub',
      description: 'The claim naming whom the agent acts for (input.agent.on_behalf_of): act.sub as RFC 8693 token exchange writes it, or another claim.',
    },
    required_scopes: {
      type: 'array',
      default: [],
      items: oauthScope,
      description:
        'Scopes every token must carry (in scope or scp); a token lacking one is refused 403 insufficient_scope. A route can name its own (routes[].identity).',
    },
    claims_to_policy: {
      type: 'array',
      default: [],
      items: claimName,
      description: 'Claims passed to the policy in input.agent.claims (an allow-list; others are not shown).',
    },
    resource: {
      type: 'string',
      pattern: '^https?://[^/?#\\s]+/?$',
      [EXPECTED]: 'an http(s) origin, e.g. https://gw.example.com',
      description:
        "The gateway's public base URL, as agents reach it (e.g. https://gw.example.com). An MCP route's resource (RFC 9728, RFC 8707) is this plus its prefix. Default: the agent listener's own address.",
    },
    required: {
      type: 'boolean',
      default: false,
      description:
        'Every call must present a credential: one without Authorization is refused 401 PC_TOKEN_REQUIRED (on an MCP route with a resource_metadata challenge) instead of reaching the policy as input.agent null.',
    },
  },
} as const;

/** tls: the agent listener serves HTTPS, optionally asking for client certificates (docs/identity.md). */
const listenerTls = {
  type: 'object',
  additionalProperties: false,
  required: ['cert', 'key'],
  description: 'Serve the agent listener over TLS. The files are watched and reloaded on change; a bad new file keeps the old ones (logged).',
  properties: {
    cert: { ...pemFile, description: 'PEM file of the server certificate (and its chain): {file: PATH}.' },
    key: { ...pemFile, description: "PEM file of the server certificate's private key: {file: PATH}." },
    client_ca: {
      ...pemFile,
      description: 'PEM file of the CA certificates client certificates must chain to: {file: PATH}. Turns on client certificate requests.',
    },
    client_auth: {
      enum: ['required', 'optional'],
      default: 'required',
      description:
        'With client_ca. required: a connection without a client certificate that verifies is refused in the handshake. optional: one without a certificate is let in (other identity methods apply); one with a certificate that does not verify is refused 401 PC_CLIENT_CERT_REQUIRED.',
    },
    reload_poll_ms: { type: 'integer', minimum: 100, default: 2000, description: 'Interval of the content check behind the file watches (ms).' },
  },
} as const;

/** identity.mtls: agents identified by their verified client certificate. */
const mtlsIdentity = {
  type: 'object',
  additionalProperties: false,
  description: 'Identify agents by the client certificate of their TLS connection (needs tls.client_ca).',
  properties: {
    id_from: {
      enum: ['spiffe', 'subject_cn'],
      default: 'spiffe',
      description: 'spiffe: the agent id is the SPIFFE ID (the one spiffe:// URI SAN). subject_cn: the subject common name.',
    },
    trust_domain: {
      type: 'string',
      pattern: '^[a-z0-9._-]{1,255}$',
      [EXPECTED]: 'a SPIFFE trust domain (lower-case letters, digits, . _ -), e.g. example.org',
      description: 'Only SPIFFE IDs spiffe://<trust_domain>/… are accepted.',
    },
  },
} as const;

/** The keys of a policy: `policy` itself and a shadow policy (`policy.shadow`, `routes[].shadow_policy`). */
const policyKeys = {
  path: {
    type: 'string',
    minLength: 1,
    description: 'A directory of .rego files, or a bundle built by `opa build -b` (Rego or -t wasm). Required unless bundle is set.',
  },
  entrypoint: {
    type: 'string',
    pattern: '^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$',
    [EXPECTED]: 'a rule path such as portcullis/decision',
    default: 'portcullis/decision',
    description: 'The rule whose value decides each call.',
  },
  watch: { type: 'boolean', description: 'Recompile and swap in the policy when its files change. Default true for a directory.' },
  poll_ms: {
    type: 'integer',
    minimum: 100,
    maximum: 3600000,
    default: 2000,
    description: 'With watch: how often the sources are hashed and compared with the policy in force, behind the file watches (docs/policy.md).',
  },
  opa: { type: 'string', minLength: 1, description: 'Path to the OPA CLI. Default $PORTCULLIS_OPA, then `opa` on PATH.' },
  bundle: {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    description:
      "Instead of path: pull the policy bundle from a bundle server (OPA's bundle service API: ETag and If-None-Match, a 304 keeps the policy in force). The last bundle put in force is persisted and used when the server is down at start-up.",
    properties: {
      url: { ...httpUrl, description: 'The bundle to GET, e.g. https://bundles.example.com/bundles/portcullis.tar.gz (no redirects are followed).' },
      min_delay_seconds: { type: 'number', minimum: 0.05, default: 60, description: 'Shortest wait between polls (a random wait in [min, max], as OPA).' },
      max_delay_seconds: { type: 'number', minimum: 0.05, default: 120, description: 'Longest wait between polls.' },
      token: { ...secretRef, description: 'A bearer token for the bundle server: {env: NAME} or {file: PATH}.' },
      tls: {
        type: 'object',
        additionalProperties: false,
        description: 'TLS to the bundle server: a private CA, and a client certificate for mTLS. Files relative to this file.',
        properties: {
          ca: { type: 'string', minLength: 1, description: 'PEM CA bundle the server must chain to (instead of the system roots).' },
          cert: { type: 'string', minLength: 1, description: 'PEM client certificate (with key).' },
          key: { type: 'string', minLength: 1, description: 'PEM private key of cert.' },
        },
      },
      persist_dir: {
        type: 'string',
        minLength: 1,
        description: 'Where the last bundle put in force is kept. Default: <audit.path>.bundle beside the audit directory.',
      },
      timeout_ms: { type: 'integer', minimum: 100, default: 10000, description: 'Longest a poll may take, connect to end of body.' },
      max_bytes: { type: 'integer', minimum: 1024, default: 67108864, description: 'Largest bundle accepted (bytes).' },
    },
  },
  signing: {
    type: 'object',
    additionalProperties: false,
    required: ['verification_key', 'algorithm'],
    description:
      'path names a bundle that must be signed (opa build --signing-key), verified as OPA does; an unsigned, tampered or older bundle is refused and the policy in force stays (docs/policy.md, Signed bundles).',
    properties: {
      verification_key: {
        anyOf: [{ type: 'string', minLength: 1 }, secretRef],
        [EXPECTED]: 'a PEM public key file, or the HMAC secret as {env: NAME} or {file: PATH}',
        description: 'The PEM file of the public key (RS*, PS*, ES*), relative to this file; for HS* the shared secret, {env: NAME} or {file: PATH}.',
      },
      algorithm: {
        enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512'],
        description: 'The signature algorithm (opa build --signing-alg).',
      },
      key_id: {
        type: 'string',
        minLength: 1,
        default: 'default',
        description:
          'The key id of this key (what opa build writes without --claims-file is "default"); the bundle is verified with this key whatever it names.',
      },
      scope: { type: 'string', minLength: 1, description: 'The scope the signature must carry (opa build --scope); absent: none.' },
      exclude_files: {
        type: 'array',
        default: [],
        items: { type: 'string', minLength: 1 },
        description: 'Members left out of verification (Go filepath.Match patterns, as OPA). Excluded members are still used.',
      },
    },
  },
  require_tests: {
    type: 'boolean',
    default: false,
    description: 'Put a policy directory in force only if its own *_test.rego pass (`opa test`, at start-up and before every reload). Not for a bundle.',
  },
} as const;

/** JSON Schema (draft-07) of portcullis.yaml; `default:` keywords are the defaults the gateway applies. */
export const CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://portcullis.dev/schema/portcullis.schema.json',
  title: 'Portcullis gateway configuration',
  type: 'object',
  additionalProperties: false,
  required: ['policy', 'audit', 'routes'],
  properties: {
    listen: { ...listenAddress, default: '127.0.0.1:8080', description: 'Agent-facing listener: host:port, or unix:PATH for a Unix socket.' },
    ...edgeKeys,
    tls: listenerTls,
    admin: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Health, readiness and Prometheus metrics.',
      properties: {
        listen: { ...listenAddress, default: '127.0.0.1:9090', description: 'Admin listener (loopback by default): host:port, or unix:PATH.' },
        ...edgeKeys,
        enabled: { type: 'boolean', default: true, description: 'Whether the admin listener runs.' },
        token: {
          ...secretRef,
          description:
            "A token ({env: NAME} or {file: PATH}, 16+ characters) that turns on the auditor's view of this gateway's trail on the admin listener (/timeline, …; docs/audit-view.md), behind it: Authorization: Bearer, or the cookie /login?token=… sets. /healthz, /readyz and /metrics stay open.",
        },
      },
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ...policyKeys,
        shadow: {
          type: 'object',
          additionalProperties: false,
          required: ['path'],
          properties: policyKeys,
          description:
            'A second policy judged on every call beside the enforcing one; its verdict goes into the decision record as shadow and never changes the call (docs/policy.md, Shadow policies). routes[].shadow_policy overrides it for one route.',
        },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: { type: 'string', minLength: 1, description: 'Directory of JSON Lines audit segments.' },
        durability: {
          enum: ['strict', 'relaxed'],
          default: 'strict',
          description: 'strict: fdatasync before forwarding; relaxed: written to the OS before forwarding, synced in the background.',
        },
        signing_key: {
          type: 'object',
          additionalProperties: false,
          description:
            'Ed25519 key that signs checkpoints, in the signer-key text form (PRIVATE+KEY+name+id+key; `portcullis audit keygen` makes one), read from the environment or a file. Default: the file <path>.key beside the audit directory, generated on first start.',
          properties: { env: envName, file: { type: 'string', minLength: 1 } },
        },
        checkpoint: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'When signed checkpoints are written (also before each rotation and at shutdown).',
          properties: {
            every_records: { type: 'integer', minimum: 1, default: 10000, description: 'After this many records.' },
            every_seconds: { type: 'integer', minimum: 1, default: 30, description: 'At least this often, even when idle (the heartbeat).' },
          },
        },
        rotate: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'When a new segment is started. Segments are never deleted or rewritten by Portcullis.',
          properties: {
            max_bytes: { type: 'integer', minimum: 4096, default: 67108864, description: 'Size of a segment before rotation (64 MiB by default).' },
            max_age_seconds: { type: 'integer', minimum: 1, default: 86400, description: 'Age of a segment before rotation.' },
          },
        },
        preallocate_bytes: {
          type: 'integer',
          minimum: 0,
          default: 1048576,
          description:
            'Zeros kept written and synced ahead of the newest segment\'s last record (strict mode, not on tmpfs), so that each fdatasync flushes data without committing a new file size (docs/audit.md, "Preallocation"). 0 appends instead.',
        },
        sinks: {
          type: 'array',
          default: [],
          description: 'Receivers that get every record at least once, read from the trail files after they are written (docs/audit-sinks.md).',
          items: auditSink,
        },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        max_body_bytes: { type: 'integer', minimum: 0, default: 1048576, description: 'Largest request body accepted (413 above).' },
      },
    },
    timeouts,
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'pino log level.' } },
    },
    credentials: {
      type: 'object',
      default: {},
      description:
        'Named upstream credentials. Values are read from the environment (at start-up) or a file (watched: a changed file rotates the value), never from this file.',
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$', [EXPECTED]: 'a name of letters, digits, _ . - (at most 64)' },
      additionalProperties: credential,
    },
    agents: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'key_sha256'],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9_.@-]{1,128}$', [EXPECTED]: 'an id of letters, digits, _ . @ - (at most 128)' },
          key_sha256: {
            type: 'string',
            pattern: '^[0-9a-f]{64}$',
            [EXPECTED]: '64 lower-case hex digits (a SHA-256)',
            description: 'Lower-case hex SHA-256 of the agent key (`printf %s KEY | sha256sum`).',
          },
        },
      },
    },
    identity: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description:
        'How agents identify themselves besides agents[] keys. Methods are tried in order: mtls (a verified client certificate), agent keys, then jwt.',
      properties: { jwt: jwtIdentity, mtls: mtlsIdentity },
    },
    routes: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'prefix'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', [EXPECTED]: 'a name of letters, digits, _ . - (at most 64)' },
          prefix: {
            type: 'string',
            pattern: '^/([A-Za-z0-9._~-]+/)*$',
            [EXPECTED]: 'a path that starts and ends with /, e.g. /github/',
            description: 'Path prefix, starting and ending with /.',
          },
          kind: {
            enum: ['http', 'mcp'],
            default: 'http',
            description:
              'http: a REST upstream, the path below the prefix is appended to upstream. mcp: an MCP server (docs/mcp.md); the prefix is its one endpoint.',
          },
          upstream: {
            ...httpUrl,
            description:
              "Base URL the route forwards to; its path is prepended. For kind mcp: the server's Streamable HTTP endpoint, e.g. http://127.0.0.1:3001/mcp. Required unless command is set.",
          },
          credential: { type: 'string', description: 'Name of an entry under credentials, attached to allowed calls (not for command routes: use env).' },
          credentials: {
            type: 'object',
            minProperties: 1,
            propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$', [EXPECTED]: 'a label of letters, digits, _ . - (at most 64)' },
            additionalProperties: { type: 'string', [EXPECTED]: 'the name of an entry under credentials' },
            description:
              'Instead of credential: several credentials by label, e.g. {read: crm-ro, write: crm-rw}; the decision picks one ("credential": "read"), else default_credential applies, else the call is denied.',
          },
          default_credential: {
            type: 'string',
            description: 'With credentials: the label a call gets when the decision names none. Without it, such a call is denied (PC_POLICY_ERROR).',
          },
          timeouts: routeTimeouts,
          identity: routeIdentity,
          forward_range: {
            type: 'boolean',
            description:
              "Forward the agent's Range and If-Range headers. Default false on routes with a credential and on kind mcp routes: two ranged requests could each fetch half of an echoed secret, and each half would be masked on its own. Other routes always forward them.",
          },
          audit_body: {
            type: 'boolean',
            default: false,
            description:
              "kind http: keep the JSON request body in the decision record's input (with the policy's mask applied, pointers rooted at the body; bodies over 4 KiB of canonical JSON are left out), so `policy replay` can judge rules that read it. Default: only its size and SHA-256.",
          },
          mode: {
            enum: ['enforce', 'dry_run'],
            default: 'enforce',
            description:
              'dry_run: the policy decides and every decision is recorded (enforced: false), but nothing is refused on its verdict: a denied call is forwarded with its credential, and lists are not filtered. For trying a policy on real traffic; warned at start-up and shown on /readyz.',
          },
          shadow_policy: {
            type: 'object',
            additionalProperties: false,
            required: ['path'],
            properties: policyKeys,
            description: "This route's shadow policy, instead of policy.shadow: judged beside the enforcing policy, recorded, never enforced.",
          },
          deny_as: {
            enum: ['result', 'error'],
            default: 'result',
            description:
              'kind mcp: how a denied tools/call is answered. result: a tool result with isError true, which the model sees; error: a JSON-RPC error -31001 with data {decision_id, reasons}.',
          },
          command: {
            type: 'array',
            minItems: 1,
            items: { type: 'string', minLength: 1 },
            description:
              'kind mcp: run this local MCP server over stdio instead of calling upstream, e.g. [npx, -y, some-mcp-server]. It is started per session, restarted when it crashes, and its stderr is logged.',
          },
          env: {
            type: 'object',
            default: {},
            propertyNames: envName,
            additionalProperties: { anyOf: [{ type: 'string' }, secretRef], [EXPECTED]: 'a string or a secret reference {env: NAME} / {file: PATH}' },
            description:
              "With command: the only variables the server gets besides PATH, HOME, LANG and the like (never the gateway's own environment). A value is a string or a secret {env: NAME} / {file: PATH}; secrets are masked in answers.",
          },
          cwd: { type: 'string', minLength: 1, default: '.', description: 'With command: working directory of the server, relative to this file.' },
          restart: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description: 'With command: back-off between restarts of a crashed server, doubling from initial to max.',
            properties: {
              initial_delay_ms: { type: 'integer', minimum: 1, default: 250, description: 'First wait.' },
              max_delay_ms: { type: 'integer', minimum: 1, default: 30000, description: 'Longest wait.' },
            },
          },
        },
      },
    },
  },
} as const;

/**
 * The schemas of each sink type, so the sink modules take their defaults from here (the one
 * source of every default) when they are built without a config, as tests and benchmarks do.
 */
export const SINK_SCHEMAS = { syslog: syslogSinkSchema, webhook: webhookSinkSchema, splunk_hec: splunkHecSinkSchema } as const;

/** Keys that were renamed or are commonly mistaken, with the key to use instead. */
export const RENAMED_KEYS: Readonly<Record<string, string>> = {
  'policy.dir': 'policy.path',
  'policy.directory': 'policy.path',
  'policy.entry': 'policy.entrypoint',
  'audit.dir': 'audit.path',
  'audit.directory': 'audit.path',
  'limits.max_body': 'limits.max_body_bytes',
  listen_address: 'listen',
  'agents[].key': 'agents[].key_sha256 (store the SHA-256 of the key, never the key)',
  'routes[].target': 'routes[].upstream',
  'routes[].path': 'routes[].prefix',
  'audit.sinks[].host': 'audit.sinks[].address (host:port) for syslog, or audit.sinks[].url',
  'audit.sinks[].port': 'audit.sinks[].address (host:port)',
  'audit.sinks[].endpoint': 'audit.sinks[].url',
};

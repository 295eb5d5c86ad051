/**
 * The configuration schema: the single source of truth for what portcullis.yaml may contain.
 * It is published as schema/portcullis.schema.json for editors (`npm run schema` regenerates it;
 * a test fails when the published file is stale).
 */

const hostPort = {
  type: 'string',
  pattern: '^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
  description: 'host:port to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).',
} as const;

const envName = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } as const;
const headerName = { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" } as const;

const timeouts = {
  type: 'object',
  additionalProperties: false,
  description: 'Upstream timeouts in milliseconds.',
  properties: {
    connect_ms: { type: 'integer', minimum: 1, description: 'TCP/TLS connect timeout. Default 5000.' },
    headers_ms: { type: 'integer', minimum: 1, description: 'Time to the upstream response headers. Default 30000.' },
    idle_ms: {
      type: 'integer',
      minimum: 0,
      description: 'Longest silence on a response body (SSE streams included); 0 disables. Default 300000.',
    },
  },
} as const;

/** JSON Schema (draft-07) of portcullis.yaml. */
export const CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://portcullis.dev/schema/portcullis.schema.json',
  title: 'Portcullis gateway configuration',
  type: 'object',
  additionalProperties: false,
  required: ['policy', 'audit', 'routes'],
  properties: {
    listen: { ...hostPort, description: 'Agent-facing listener. Default 127.0.0.1:8080.' },
    admin: {
      type: 'object',
      additionalProperties: false,
      description: 'Health, readiness and Prometheus metrics.',
      properties: {
        listen: { ...hostPort, description: 'Admin listener. Default 127.0.0.1:9090 (loopback).' },
        enabled: { type: 'boolean', description: 'Default true.' },
      },
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: { type: 'string', minLength: 1, description: 'A directory of .rego files, or a bundle built by `opa build -t wasm`.' },
        entrypoint: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$', description: 'The rule whose value decides each call. Default portcullis/decision.' },
        watch: { type: 'boolean', description: 'Recompile and swap in the policy when its files change. Default true for a directory.' },
        opa: { type: 'string', minLength: 1, description: 'Path to the OPA CLI. Default $PORTCULLIS_OPA, then `opa` on PATH.' },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: { type: 'string', minLength: 1, description: 'Directory of JSON Lines audit segments.' },
        durability: { enum: ['strict', 'relaxed'], description: 'strict (default): fdatasync before forwarding; relaxed: written to the OS before forwarding, synced in the background.' },
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
          description: 'When signed checkpoints are written (also before each rotation and at shutdown).',
          properties: {
            every_records: { type: 'integer', minimum: 1, description: 'After this many records. Default 10000.' },
            every_seconds: { type: 'integer', minimum: 1, description: 'At least this often, even when idle (the heartbeat). Default 30.' },
          },
        },
        rotate: {
          type: 'object',
          additionalProperties: false,
          description: 'When a new segment is started. Segments are never deleted or rewritten by Portcullis.',
          properties: {
            max_bytes: { type: 'integer', minimum: 4096, description: 'Size of a segment before rotation. Default 67108864 (64 MiB).' },
            max_age_seconds: { type: 'integer', minimum: 1, description: 'Age of a segment before rotation. Default 86400.' },
          },
        },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_body_bytes: { type: 'integer', minimum: 0, description: 'Largest request body accepted (413 above). Default 1048576.' },
      },
    },
    timeouts,
    log: {
      type: 'object',
      additionalProperties: false,
      properties: { level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] } },
    },
    credentials: {
      type: 'object',
      description: 'Named upstream credentials. Values are read at start-up from the environment or a file, never from this file.',
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
      additionalProperties: {
        oneOf: [
          {
            type: 'object',
            additionalProperties: false,
            required: ['type'],
            properties: { type: { const: 'bearer' }, env: envName, file: { type: 'string', minLength: 1 } },
          },
          {
            type: 'object',
            additionalProperties: false,
            required: ['type', 'header'],
            properties: { type: { const: 'header' }, header: headerName, env: envName, file: { type: 'string', minLength: 1 } },
          },
          {
            type: 'object',
            additionalProperties: false,
            required: ['type', 'username'],
            properties: {
              type: { const: 'basic' },
              username: { type: 'string', minLength: 1, pattern: '^[^:]*$' },
              password_env: envName,
              password_file: { type: 'string', minLength: 1 },
            },
          },
        ],
      },
    },
    agents: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'key_sha256'],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9_.@-]{1,128}$' },
          key_sha256: { type: 'string', pattern: '^[0-9a-f]{64}$', description: 'Lower-case hex SHA-256 of the agent key (`printf %s KEY | sha256sum`).' },
        },
      },
    },
    routes: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'prefix', 'upstream'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
          prefix: { type: 'string', pattern: '^/([A-Za-z0-9._~-]+/)*$', description: 'Path prefix, starting and ending with /.' },
          upstream: { type: 'string', pattern: '^https?://', description: 'Base URL the route forwards to; its path is prepended.' },
          credential: { type: 'string', description: 'Name of an entry under credentials.' },
          timeouts,
        },
      },
    },
  },
} as const;

/** Keys that were renamed or are commonly mistaken, with the key to use instead. */
export const RENAMED_KEYS: Readonly<Record<string, string>> = {
  'policy.dir': 'policy.path',
  'policy.directory': 'policy.path',
  'policy.entry': 'policy.entrypoint',
  'audit.dir': 'audit.path',
  'audit.directory': 'audit.path',
  'limits.max_body': 'limits.max_body_bytes',
  'listen_address': 'listen',
  'agents[].key': 'agents[].key_sha256 (store the SHA-256 of the key, never the key)',
  'routes[].target': 'routes[].upstream',
  'routes[].path': 'routes[].prefix',
};

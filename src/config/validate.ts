/**
 * Checks parsed config data against CONFIG_SCHEMA and fills in the schema's defaults (Ajv's
 * `useDefaults`, so the defaults editors show are the ones the gateway runs with). A refusal
 * is translated from Ajv's terms ("must match pattern …") into one ConfigError that shows the
 * value and what was expected, located at its line; values under a credential or secret are
 * never shown.
 */
import Ajv, { type ErrorObject } from 'ajv';
import { ConfigError, type ConfigCode } from '../errors';
import type { RawConfig } from './raw-config';
import { CONFIG_SCHEMA, EXPECTED, RENAMED_KEYS } from './schema';
import type { ConfigSource, KeyPath } from './source';

const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: true, verbose: true });
ajv.addVocabulary([EXPECTED]);
const check = ajv.compile(CONFIG_SCHEMA);

/** Validates the source's data and returns a copy with the defaults applied. Throws ConfigError. */
export function validateConfig(source: ConfigSource): RawConfig {
  const data = structuredClone(source.data);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError('CONFIG_TYPE', source.locate([]), 'the file must hold a YAML mapping of keys (policy:, audit:, routes:, …)');
  }
  if (!check(data)) throw translate(source, check.errors ?? []);
  return data as RawConfig;
}

/**
 * Whether a key path holds (or may hold) a secret or a credential: its value is never shown,
 * even when it is wrong, since a wrong value there is often a pasted token.
 */
function isSecretPath(path: KeyPath): boolean {
  const [a, b, c, d] = path;
  if (a === 'credentials' || (a === 'audit' && b === 'signing_key')) return true;
  if (a === 'audit' && b === 'sinks') return d === 'token' || d === 'headers';
  return a === 'routes' && c === 'env';
}

function segmentsOf(instancePath: string): (string | number)[] {
  if (!instancePath) return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** The error to report: an unknown key first, else the deepest; at one depth an anyOf's own. */
function pick(errors: readonly ErrorObject[]): ErrorObject {
  const unknown = errors.find((e) => e.keyword === 'additionalProperties');
  if (unknown) return unknown;
  const useful = errors.filter((e) => e.keyword !== 'if' && e.keyword !== 'propertyNames');
  const depth = (e: ErrorObject) => segmentsOf(e.instancePath).length + (e.propertyName !== undefined ? 1 : 0);
  const deepest = Math.max(...useful.map(depth));
  const atDepth = useful.filter((e) => depth(e) === deepest);
  return atDepth.find((e) => e.keyword === 'anyOf') ?? atDepth[0] ?? errors[0];
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
};

/** What a value is, in words, e.g. `the number 8080`; secret values are not shown. */
function describe(value: unknown, secret: boolean): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (secret) return `a ${typeof value} (value hidden: it is under a credential or secret)`;
  return `the ${typeof value} ${shown(value, false)}`;
}

/** A value as it is quoted in a message, or a placeholder under a secret. */
function shown(value: unknown, secret: boolean): string {
  if (secret) return '(value hidden)';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

function rangeOf(schema: { minimum?: number; maximum?: number }): string {
  if (schema.minimum !== undefined && schema.maximum !== undefined) return `${schema.minimum}–${schema.maximum}`;
  return schema.minimum !== undefined ? `at least ${schema.minimum}` : `at most ${schema.maximum}`;
}

function unknownKey(source: ConfigSource, path: (string | number)[], e: ErrorObject): ConfigError {
  const key = String((e.params as { additionalProperty: string }).additionalProperty);
  const full = [...path, key];
  const generic = full
    .map((s) => (typeof s === 'number' ? '[]' : s))
    .join('.')
    .replace(/\.\[\]/g, '[]');
  const renamed = RENAMED_KEYS[generic];
  const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
  const problem = renamed
    ? `unknown key "${key}"; use ${renamed} instead`
    : `unknown key "${key}"${known.length ? ` (expected one of: ${known.join(', ')})` : ''}`;
  return new ConfigError('CONFIG_UNKNOWN_KEY', source.locate(full, { key: true }), problem);
}

function translate(source: ConfigSource, errors: readonly ErrorObject[]): ConfigError {
  const e = pick(errors);
  let path = segmentsOf(e.instancePath);
  if (e.keyword === 'additionalProperties') return unknownKey(source, path, e);
  if (e.propertyName !== undefined) path = [...path, e.propertyName];
  // A key name is shown (secrets are values); a value under a credential or secret is not.
  const secret = e.propertyName === undefined && isSecretPath(path);
  const value = e.propertyName !== undefined ? e.propertyName : (e.data as unknown);
  // A list entry is named with its list: `allowed_hosts[1]`, not `1`.
  const last = path[path.length - 1];
  const leaf = path.length ? (typeof last === 'number' && path.length > 1 ? `${String(path[path.length - 2])}[${last}]` : String(last)) : 'the file';
  const schema = (e.parentSchema ?? {}) as Record<string, unknown> & { minimum?: number; maximum?: number; minItems?: number; properties?: object };
  const expected = schema[EXPECTED] as string | undefined;
  const fail = (code: ConfigCode, problem: string, key = false) => new ConfigError(code, source.locate(path, { key }), problem);
  switch (e.keyword) {
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return new ConfigError('CONFIG_MISSING_KEY', source.locate([...path, missing]), `missing required key "${missing}"`);
    }
    case 'type':
      return fail('CONFIG_TYPE', `${leaf} is ${describe(value, secret)}: expected ${expected ?? TYPE_WORDS[String((e.params as { type: string }).type)]}`);
    case 'anyOf':
      return fail('CONFIG_TYPE', `${leaf} is ${describe(value, secret)}: expected ${expected ?? 'another form'}`);
    case 'minimum':
    case 'maximum':
      return fail('CONFIG_RANGE', `${leaf} ${shown(value, secret)} is out of range: expected ${rangeOf(schema)}`);
    case 'minLength':
      return fail('CONFIG_RANGE', `${leaf} is empty: expected a non-empty string`);
    case 'minItems':
      return fail('CONFIG_RANGE', `${leaf} is an empty list: expected at least ${schema.minItems} entry`);
    case 'minProperties':
      return fail('CONFIG_MISSING_KEY', `${leaf} names no source: expected one of ${Object.keys(schema.properties ?? {}).join(', ')}`);
    case 'maxProperties':
      return fail('CONFIG_CONFLICT', `${leaf} names more than one source: expected exactly one of ${Object.keys(schema.properties ?? {}).join(', ')}`);
    case 'pattern':
      return fail(
        'CONFIG_FORMAT',
        `${e.propertyName !== undefined ? 'name' : leaf} ${shown(value, secret)} is not ${expected ?? `of the form ${(e.params as { pattern: string }).pattern}`}`,
        e.propertyName !== undefined,
      );
    case 'enum':
      return fail(
        'CONFIG_ENUM',
        `${leaf} ${shown(value, secret)} is not one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`,
      );
    case 'const':
      return fail('CONFIG_ENUM', `${leaf} ${shown(value, secret)}: expected ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`);
    default:
      return fail('CONFIG_TYPE', `${leaf} ${shown(value, secret)} is not valid here${expected ? `: expected ${expected}` : ''}`);
  }
}

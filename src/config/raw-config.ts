/**
 * The type of a validated config, derived from CONFIG_SCHEMA itself, so the schema, the
 * defaults and the code that reads them cannot drift apart: a key the schema does not have is a
 * type error, and a key with a `default:` is never undefined (Ajv filled it in).
 *
 * FromSchema covers the parts of JSON Schema that CONFIG_SCHEMA uses: const, enum, anyOf,
 * string / integer / boolean, arrays, objects with properties, required, defaults and
 * additionalProperties, and `allOf` of `if`/`then` branches (a discriminated union).
 */
import type { CONFIG_SCHEMA } from './schema';

type Simple<T> = T extends 'string' ? string : T extends 'integer' | 'number' ? number : T extends 'boolean' ? boolean : unknown;

type ThenOf<B> = B extends { readonly then: infer T } ? FromSchema<T> : never;

/** Keys that are always present: required, or filled from a default. */
type Present<S, P> =
  | (S extends { readonly required: readonly (infer R)[] } ? R : never)
  | { [K in keyof P]: P[K] extends { readonly default: unknown } ? K : never }[keyof P];

type ObjectOf<S> = (S extends { readonly properties: infer P }
  ? { readonly [K in keyof P as K extends Present<S, P> ? K : never]: FromSchema<P[K]> } & {
      readonly [K in keyof P as K extends Present<S, P> ? never : K]?: FromSchema<P[K]>;
    }
  : unknown) &
  (S extends { readonly additionalProperties: infer A } ? (A extends object ? { readonly [key: string]: FromSchema<A> } : unknown) : unknown);

/** The TypeScript type of data valid against schema S (after defaults). */
export type FromSchema<S> = S extends { readonly const: infer C }
  ? C
  : S extends { readonly enum: readonly (infer E)[] }
    ? E
    : S extends { readonly anyOf: readonly (infer A)[] }
      ? FromSchema<A>
      : S extends { readonly allOf: readonly (infer B)[] }
        ? ThenOf<B>
        : S extends { readonly type: 'array'; readonly items: infer I }
          ? readonly FromSchema<I>[]
          : S extends { readonly type: 'object' }
            ? ObjectOf<S>
            : S extends { readonly type: infer T }
              ? Simple<T>
              : unknown;

/** portcullis.yaml after validation, defaults applied. */
export type RawConfig = FromSchema<typeof CONFIG_SCHEMA>;
/** One route as written (defaults applied). */
export type RawRoute = RawConfig['routes'][number];
/** One audit sink as written (defaults applied). */
export type RawSink = RawConfig['audit']['sinks'][number];
/** One credential as written. */
export type RawCredential = RawConfig['credentials'][string];

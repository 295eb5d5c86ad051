/**
 * Policy evaluation. The PolicyEngine interface is the seam: the gateway only calls
 * `decide(input)`. WasmPolicyEngine runs a compiled policy in-process with opa-wasm. Any
 * failure — undefined result, wrong type, a trap, a builtin error — is a deny whose reason names
 * the cause; evaluation never throws to the caller.
 */
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { toError } from '../errors';
import { builtinsForLoadPolicy } from './builtins';
import type { CompiledPolicy } from './bundle';

/** What the gateway passes to the policy (docs/policy.md). */
export interface PolicyInput {
  readonly route: string;
  readonly agent: { readonly id: string } | null;
  readonly request: {
    readonly method: string;
    readonly path: string;
    readonly query: Record<string, string[]>;
    readonly headers: Record<string, string>;
    readonly body?: unknown;
  };
  readonly time: string;
  readonly [extra: string]: unknown;
}

/** A decision. `error` is set when the policy failed to decide (then `allow` is false). */
export interface Decision {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  readonly error?: string;
  /** Extra fields the policy returned (e.g. `mask`), for later stages. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** Something that decides calls. */
export interface PolicyEngine {
  readonly revision: string;
  decide(input: PolicyInput): Decision;
}

/** Largest Wasm memory a policy may grow to, in 64 KiB pages (256 MiB). */
const MAX_PAGES = 4096;

type LoadedPolicy = Awaited<ReturnType<typeof loadPolicy>>;

function failed(cause: string): Decision {
  return { allow: false, reasons: [`policy error: ${cause}`], error: cause };
}

/** Interprets the entrypoint's value: a boolean, or `{allow: bool, reasons?: [string]}`. */
export function interpretResult(results: unknown): Decision {
  if (!Array.isArray(results) || results.length === 0) return failed('the entrypoint is undefined for this input');
  if (results.length > 1) return failed('the entrypoint produced more than one result');
  const value = (results[0] as { result?: unknown }).result;
  if (value === true) return { allow: true, reasons: [] };
  if (value === false) return { allow: false, reasons: ['denied by policy'] };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return failed(`the entrypoint returned ${value === undefined ? 'nothing' : typeof value}, not a boolean or an object`);
  }
  const { allow, reasons, ...extra } = value as Record<string, unknown>;
  if (typeof allow !== 'boolean') return failed('the decision object has no boolean "allow"');
  if (reasons !== undefined && (!Array.isArray(reasons) || !reasons.every((r) => typeof r === 'string'))) {
    return failed('"reasons" must be an array of strings');
  }
  const list = (reasons as string[] | undefined) ?? [];
  return {
    allow,
    reasons: allow || list.length > 0 ? list : ['denied by policy'],
    ...(Object.keys(extra).length ? { extra } : {}),
  };
}

/** Evaluates a compiled policy with opa-wasm. One instance; evaluation is synchronous. */
export class WasmPolicyEngine implements PolicyEngine {
  private constructor(
    private readonly policy: LoadedPolicy,
    private readonly entrypoint: string,
    readonly revision: string,
  ) {}

  /** Instantiates the module once and loads its data. */
  static async create(compiled: CompiledPolicy, entrypoint: string): Promise<WasmPolicyEngine> {
    let policy: LoadedPolicy;
    try {
      policy = await loadPolicy(compiled.wasm, { initial: 8, maximum: MAX_PAGES }, builtinsForLoadPolicy() as never);
      policy.setData(compiled.data as object);
    } catch (thrown) {
      throw new Error(`cannot load the compiled policy: ${toError(thrown).message}`);
    }
    return new WasmPolicyEngine(policy, entrypoint, compiled.revision);
  }

  decide(input: PolicyInput): Decision {
    let results: unknown;
    try {
      results = this.policy.evaluate(input, this.entrypoint);
    } catch (thrown) {
      return failed(`evaluation failed: ${toError(thrown).message.slice(0, 500)}`);
    }
    return interpretResult(results);
  }
}

/** Where the request path gets the policy in force (PolicyStore is the one implementation). */
export interface PolicySource {
  /** False until a policy has loaded. */
  readonly ready: boolean;
  /** The engine in force. */
  readonly current: PolicyEngine;
}

/** Used before any policy has loaded: denies everything, saying why. */
export const NO_POLICY: PolicyEngine = {
  revision: 'none',
  decide: () => failed('no policy is loaded'),
};

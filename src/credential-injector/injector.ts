/**
 * Attaches a route's credential to an upstream request. This module and the masker are the only
 * readers of secret values. Bindings are built once per route at start-up; the hot path only
 * sets one header.
 */
import { revealSecret, type Secret } from '../secret';
import { ResponseMasker } from './masker';
import type { StaticCredential } from './static';

/** What an answer must not carry: secret values the route's upstream holds, masked in what it sends back. */
export interface ResponseSecrets {
  /** The credential's (or secret set's) name, for logs and records; never a value. */
  readonly name: string;
  /** Masks the values, and any header value that carries them, in every encoded form (needles.ts). */
  readonly masker: ResponseMasker;
}

/** A route's credential, ready to attach; its values are the secrets its answers must not carry. */
export interface CredentialBinding extends ResponseSecrets {
  /** The header the credential travels in (lower-case). */
  readonly header: string;
  /** Sets the credential header on the outgoing headers. */
  attach(headers: Record<string, string>): void;
}

/** The header a static credential travels in, its value, and what is masked of it. */
interface Forms {
  readonly header: string;
  readonly value: string;
  /** Masked in every form. */
  readonly needles: readonly string[];
  /** Values that carry a secret: masked in their encoded forms (needles.ts). */
  readonly carriers: readonly string[];
}

/** The secret of a static credential as configured. */
export function staticSecretOf(credential: StaticCredential): string {
  switch (credential.type) {
    case 'bearer':
      return revealSecret(credential.token);
    case 'header':
      return revealSecret(credential.value);
    case 'basic':
      return revealSecret(credential.password);
  }
}

function formsOf(credential: StaticCredential, secret: string): Forms {
  switch (credential.type) {
    case 'bearer': {
      const value = `Bearer ${secret}`;
      return { header: 'authorization', value, needles: [secret], carriers: [value] };
    }
    case 'header':
      return { header: credential.header, value: secret, needles: [secret], carriers: [] };
    case 'basic': {
      const pair = `${credential.username}:${secret}`;
      const value = `Basic ${Buffer.from(pair).toString('base64')}`;
      return { header: 'authorization', value, needles: [secret], carriers: [pair, value] };
    }
  }
}

/**
 * Builds the binding for a credential: `secret` (default: the configured one) is attached;
 * `stillMasked` are previous values of a rotated secret, masked with it during the grace period.
 */
export function bindCredential(
  credential: StaticCredential,
  secret: string = staticSecretOf(credential),
  stillMasked: readonly string[] = [],
): CredentialBinding {
  const forms = formsOf(credential, secret);
  const old = stillMasked.map((s) => formsOf(credential, s));
  const masker = new ResponseMasker([...forms.needles, ...old.flatMap((f) => f.needles)], [...forms.carriers, ...old.flatMap((f) => f.carriers)]);
  const { header, value } = forms;
  return Object.freeze({
    name: credential.name,
    header,
    attach(headers: Record<string, string>) {
      headers[header] = value;
    },
    masker,
  });
}

/**
 * A stdio MCP server's secret environment variables: nothing to attach (the child already holds
 * them), but the same masking of their values in what it answers, so a server that echoes its
 * environment cannot hand a secret to the agent.
 */
export function envSecrets(name: string, secrets: readonly Secret[]): ResponseSecrets {
  return Object.freeze({ name, masker: new ResponseMasker(secrets.map((s) => revealSecret(s))) });
}

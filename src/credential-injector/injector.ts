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

/** Builds the binding for a credential. */
export function bindCredential(credential: StaticCredential): CredentialBinding {
  let header: string;
  let value: string;
  const needles: string[] = [];
  /** Values that carry a secret: masked in their encoded forms (needles.ts). */
  const carriers: string[] = [];
  switch (credential.type) {
    case 'bearer': {
      const token = revealSecret(credential.token);
      header = 'authorization';
      value = `Bearer ${token}`;
      needles.push(token);
      carriers.push(value);
      break;
    }
    case 'header':
      header = credential.header;
      value = revealSecret(credential.value);
      needles.push(value);
      break;
    case 'basic': {
      const password = revealSecret(credential.password);
      const encoded = Buffer.from(`${credential.username}:${password}`).toString('base64');
      header = 'authorization';
      value = `Basic ${encoded}`;
      needles.push(password);
      carriers.push(`${credential.username}:${password}`, value);
      break;
    }
  }
  const masker = new ResponseMasker(needles, carriers);
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

/**
 * Attaches a route's credential to an upstream request. This module and the masker are the only
 * readers of secret values. Bindings are built once per route at start-up; the hot path only
 * sets one header.
 */
import type { Credential } from '../config/types';
import { revealSecret, type Secret } from './secret';
import { ResponseMasker } from './masker';

/** A route's credential, ready to attach. */
export interface CredentialBinding {
  /** The credential's name (for audit records); never its value. */
  readonly name: string;
  /** The header the credential travels in (lower-case). */
  readonly header: string;
  /** Sets the credential header on the outgoing headers. */
  attach(headers: Record<string, string>): void;
  /** Masks the credential's values, and the header value attached, in every encoded form (needles.ts), in what the upstream sends back. */
  readonly masker: ResponseMasker;
}

/** Builds the binding for a credential. */
export function bindCredential(credential: Credential): CredentialBinding {
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
 * The binding of a stdio MCP server's secret environment variables: nothing to attach (the
 * child already holds them), but the same masking of their values in what it answers, so a
 * server that echoes its environment cannot hand a secret to the agent.
 */
export function bindEnvSecrets(name: string, secrets: readonly Secret[]): CredentialBinding {
  const masker = new ResponseMasker(secrets.map((s) => revealSecret(s)));
  return Object.freeze({
    name,
    header: '',
    attach() {
      /* the secrets travel in the child's environment, not in a header */
    },
    masker,
  });
}

/**
 * Static secrets (`bearer`, `header`, `basic`): a value read from the environment or a file,
 * attached as one header. The attachment is built once per value, so a call costs one header
 * set and no allocation.
 *
 * A secret read from a file rotates (docs/credentials.md, Rotation): the file is watched
 * (src/config/file-watch.ts, which sees in-place writes, renames and Kubernetes' `..data`
 * symlink swap), and a new value is attached from the next call. The previous value stays
 * masked in answers for `rotation_grace_s`, since a call attached before the change may still
 * be answered, or an upstream may still echo it. A file that becomes empty, unreadable or more
 * than one line keeps the value in use: logged, counted as a failure, no call refused.
 */
import type { Credential } from '../config/types';
import { watchFileSet } from '../config/file-watch';
import { secretFileValue } from '../config/secrets/file-source';
import { bindCredential, staticSecretOf } from './injector';
import type { BrokerContext } from './broker-context';
import type { Attachment, CredentialHealth, CredentialProvider, OutgoingRequest } from './provider';

/** The static credential types. */
export type StaticCredential = Extract<Credential, { type: 'bearer' | 'header' | 'basic' }>;

/** A previous value, masked until `until` (ms since the epoch). */
interface Retired {
  readonly secret: string;
  readonly until: number;
}

/** A provider for a static secret. */
export function staticProvider(credential: StaticCredential, broker: BrokerContext): CredentialProvider {
  let secret = staticSecretOf(credential);
  let retired: Retired[] = [];
  let binding = bindCredential(credential, secret);
  let cacheHits = 0;
  let fetches = 1;
  let failures = 0;
  let lastError: string | null = null;
  // Built at the first call (and after each rotation): the fingerprint key is the audit signing
  // key's, loaded after the routes.
  let attachment: Attachment | null = null;
  const attachedValue = () => {
    const probe: Record<string, string> = {};
    binding.attach(probe);
    return probe[binding.header];
  };
  const build = (): Attachment => {
    const b = binding;
    return Object.freeze({
      apply: (request: OutgoingRequest) => b.attach(request.headers),
      scopes: null,
      fingerprint: broker.fingerprint(attachedValue()),
      secrets: b,
    });
  };

  // Rebinds to the current value, masking the previous ones still in their grace period.
  let graceTimer: NodeJS.Timeout | null = null;
  const rebind = () => {
    const now = Date.now();
    retired = retired.filter((r) => r.until > now);
    binding = bindCredential(
      credential,
      secret,
      retired.map((r) => r.secret),
    );
    attachment = null;
    if (graceTimer !== null) clearTimeout(graceTimer);
    graceTimer = null;
    if (retired.length > 0) {
      graceTimer = setTimeout(rebind, Math.max(0, Math.min(...retired.map((r) => r.until)) - now));
      graceTimer.unref();
    }
  };

  const rotation = credential.rotation;
  const fail = (problem: string) => {
    failures++;
    lastError = `the secret file ${problem}; the value in use is kept`;
    broker.log.error({ credential: credential.name, file: rotation?.file }, `credential ${credential.name}: ${lastError}`);
  };
  const watch =
    rotation === null
      ? null
      : watchFileSet(
          { files: [rotation.file], pollMs: rotation.pollMs, initial: null },
          {
            changed([content]) {
              const read = secretFileValue(content);
              if ('problem' in read) {
                fetches++;
                fail(read.problem);
                return false;
              }
              lastError = null;
              if (read.value === secret) return true;
              fetches++;
              const previousValue = attachedValue();
              const previous = secret;
              secret = read.value;
              if (rotation.graceS > 0) retired.push({ secret: previous, until: Date.now() + rotation.graceS * 1000 });
              rebind();
              broker.rotated({ credential: credential.name, type: credential.type, value: attachedValue(), previous: previousValue, graceS: rotation.graceS });
              broker.log.info(
                { credential: credential.name, file: rotation.file, grace_s: rotation.graceS },
                `credential ${credential.name} rotated: the secret file changed; calls get the new value`,
              );
              return true;
            },
            unreadable: (err) => fail(`cannot be read (${err.code ?? 'error'})`),
          },
        );

  return {
    name: credential.name,
    type: credential.type,
    needsCaller: false,
    obtain(call) {
      if (call.scopes !== null) throw broker.cannotGrant(credential.name, 'it is a static secret with no scopes');
      cacheHits++;
      attachment ??= build();
      return attachment;
    },
    secrets: () => binding,
    health: (): CredentialHealth => ({
      name: credential.name,
      type: credential.type,
      ok: true,
      fetches,
      cacheHits,
      failures,
      expiresInS: null,
      lastError,
    }),
    close() {
      watch?.close();
      if (graceTimer !== null) clearTimeout(graceTimer);
    },
  };
}

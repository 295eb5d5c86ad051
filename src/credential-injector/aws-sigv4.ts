/**
 * AWS Signature Version 4 (`aws_sigv4`): every allowed call is signed, by `@smithy/signature-v4`
 * (the AWS SDK's own signer; no signing code here), over exactly what is forwarded: the method,
 * the upstream's Host, the path and query as forwarded, every forwarded header the signer does
 * not exclude, and the SHA-256 of the buffered body (`x-amz-content-sha256`; never
 * UNSIGNED-PAYLOAD). The agent cannot add to what is signed: its `x-amz-*` and Authorization
 * headers are dropped before the policy sees the call (RouteConfig.credentialHeaderPrefixes,
 * src/proxy/headers.ts), so neither its own session token nor an UNSIGNED-PAYLOAD reaches the
 * signer.
 *
 * With `assume_role`, the configured keys only sign STS AssumeRole; calls are signed with the
 * role's temporary credentials, cached until REFRESH_BEFORE_MS before they expire and fetched
 * by one request however many calls wait (single flight). An STS failure while nothing usable
 * is cached refuses the call 503 PC_CREDENTIAL_UNAVAILABLE, before anything is forwarded.
 *
 * Masking: the secret access key and session tokens, always; and each call's signature, for
 * that call's answer (a small masker built after signing: see `callSecrets`).
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { request as undiciRequest } from 'undici';
import type { AwsSigV4Credential } from '../config/types';
import { revealSecret } from '../secret';
import type { BrokerContext } from './broker-context';
import type { ResponseSecrets } from './injector';
import { ResponseMasker } from './masker';
import { hexStringNeedles } from './needles';
import { Sha256Checksum } from './sha256-checksum';
import type { Attachment, CredentialHealth, CredentialProvider, OutgoingRequest } from './provider';

/** Temporary credentials are renewed this long before they expire (and never used closer to it). */
export const REFRESH_BEFORE_MS = 5 * 60_000;
/** After a failed renewal, credentials with at least this long left still sign. */
const STILL_VALID_MS = 30_000;
/** After an STS failure, calls with nothing usable are refused without a new STS call for this long. */
const RETRY_AFTER_MS = 1_000;
/** Bounds of one STS call. */
const STS_TIMEOUT_MS = 10_000;
/** The most of an STS answer read (a real one is about 2 KB). */
const STS_MAX_BYTES = 64 * 1024;

/** The headers a signature adds; everything else it covers was already in the request. */
const SIGNATURE_HEADERS = ['authorization', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token'] as const;

/** One set of keys, its signer, and what an answer must not carry while it is in use. */
interface KeySet {
  readonly accessKeyId: string;
  readonly signer: SignatureV4;
  /** The secret key and session token(s) in use: masked in every answer. */
  readonly secretValues: readonly string[];
  readonly secrets: ResponseSecrets;
  /** Epoch ms after which it must not sign; Infinity for long-term keys. */
  readonly expiresAtMs: number;
  /** broker.fingerprint(accessKeyId), made at the first call (the fingerprint key is loaded after the config). */
  fingerprint: string | null;
}

/** Options for tests. */
export interface AwsSigV4Options {
  /** The clock, epoch ms. */
  readonly now?: () => number;
}

type SignableRequest = Parameters<SignatureV4['sign']>[0];

/** A provider that signs each call with AWS SigV4. */
export function awsSigV4Provider(credential: AwsSigV4Credential, broker: BrokerContext, options: AwsSigV4Options = {}): CredentialProvider {
  const now = options.now ?? Date.now;
  const base = {
    accessKeyId: revealSecret(credential.accessKeyId),
    secretAccessKey: revealSecret(credential.secretAccessKey),
    sessionToken: credential.sessionToken ? revealSecret(credential.sessionToken) : undefined,
  };
  const baseValues = [base.secretAccessKey, ...(base.sessionToken ? [base.sessionToken] : [])];
  const baseKeys = keySet(credential.name, credential.service, credential.region, base, baseValues, Infinity);
  const role = credential.assumeRole;
  // STS is signed with the configured keys, as service sts in the credential's region.
  const stsSigner = role ? signerFor('sts', credential.region, base) : null;

  let current: KeySet | null = role ? null : baseKeys;
  let inflight: Promise<KeySet> | null = null;
  let fetches = role ? 0 : 1;
  let cacheHits = 0;
  let failures = 0;
  let lastError: string | null = null;
  let lastFailureAt = Number.NEGATIVE_INFINITY;

  const fresh = (k: KeySet): boolean => k.expiresAtMs - REFRESH_BEFORE_MS > now();

  const assume = (): Promise<KeySet> => {
    if (inflight) return inflight;
    fetches++;
    inflight = assumeRole(credential, stsSigner!, now)
      .then((temp) => {
        lastError = null;
        current = keySet(
          credential.name,
          credential.service,
          credential.region,
          temp,
          [...baseValues, temp.secretAccessKey, temp.sessionToken],
          temp.expiresAtMs,
        );
        return current;
      })
      .catch((err: Error) => {
        failures++;
        lastError = err.message;
        lastFailureAt = now();
        throw broker.unavailable(credential.name, err.message);
      })
      .finally(() => {
        inflight = null;
      });
    return inflight;
  };

  return {
    name: credential.name,
    type: credential.type,
    needsCaller: false,
    obtain(call) {
      if (call.scopes !== null) throw broker.cannotGrant(credential.name, 'it is an AWS key with no scopes');
      if (current !== null && fresh(current)) {
        cacheHits++;
        return attachmentFor(current, broker);
      }
      if (current !== null && current.expiresAtMs - STILL_VALID_MS > now()) {
        // Renewal is due but these still sign: renew beside the call, so neither a slow nor a
        // failing STS delays it (a failure is in health(); the next call tries again).
        if (inflight === null && now() - lastFailureAt >= RETRY_AFTER_MS) assume().catch(() => undefined);
        cacheHits++;
        return attachmentFor(current, broker);
      }
      // Nothing usable: the call waits for STS. Right after a failure it is refused at once, so an
      // outage is not a queue of calls each waiting out an STS timeout.
      if (inflight === null && now() - lastFailureAt < RETRY_AFTER_MS) throw broker.unavailable(credential.name, lastError ?? 'STS AssumeRole failed');
      return assume().then((k) => attachmentFor(k, broker));
    },
    // Whatever is in use, and the configured keys: an answer may echo any of them.
    secrets: () => current?.secrets ?? baseKeys.secrets,
    health: (): CredentialHealth => ({
      name: credential.name,
      type: credential.type,
      ok: role === null || lastError === null || (current !== null && current.expiresAtMs - STILL_VALID_MS > now()),
      fetches,
      cacheHits,
      failures,
      expiresInS: current && Number.isFinite(current.expiresAtMs) ? Math.max(0, Math.floor((current.expiresAtMs - now()) / 1000)) : null,
      lastError,
    }),
  };
}

function signerFor(service: string, region: string, keys: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): SignatureV4 {
  return new SignatureV4({
    service,
    region,
    credentials: { accessKeyId: keys.accessKeyId, secretAccessKey: keys.secretAccessKey, ...(keys.sessionToken ? { sessionToken: keys.sessionToken } : {}) },
    // Node's own crypto, plain hashes in one shot (sha256-checksum.ts).
    sha256: Sha256Checksum,
    // S3 signs the path as sent; every other service signs it URI-encoded once more.
    uriEscapePath: service !== 's3',
    applyChecksum: true,
  });
}

function keySet(
  name: string,
  service: string,
  region: string,
  keys: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  secretValues: readonly string[],
  expiresAtMs: number,
): KeySet {
  return {
    accessKeyId: keys.accessKeyId,
    signer: signerFor(service, region, keys),
    secretValues,
    secrets: Object.freeze({ name, masker: new ResponseMasker(secretValues) }),
    expiresAtMs,
    fingerprint: null,
  };
}

/** The origin's Host, as the upstream sees it (URL drops a default port, as undici does). */
const hostCache = new Map<string, { host: string; hostname: string; protocol: string }>();
function hostOf(origin: string): { host: string; hostname: string; protocol: string } {
  let h = hostCache.get(origin);
  if (h === undefined) {
    const u = new URL(origin);
    h = { host: u.host, hostname: u.hostname, protocol: u.protocol };
    hostCache.set(origin, h);
  }
  return h;
}

/**
 * The forwarded query as the signer takes it: decoded names and values, repeated names as lists,
 * a name without `=` as an empty value. The signer re-encodes them by AWS's rule (RFC 3986
 * unreserved characters bare, everything else %XX), as AWS does on its side.
 */
function queryOf(search: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = Object.create(null);
  if (search.length === 0) return query;
  for (const pair of search.split('&')) {
    if (pair.length === 0) continue;
    const eq = pair.indexOf('=');
    const name = decodeURIComponent(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decodeURIComponent(pair.slice(eq + 1));
    const seen = query[name];
    query[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return query;
}

/** The attachment for one call: signs in apply, then masks this call's signature in its answer. */
function attachmentFor(keys: KeySet, broker: BrokerContext): Attachment {
  keys.fingerprint ??= broker.fingerprint(keys.accessKeyId);
  let secrets: ResponseSecrets = keys.secrets;
  return {
    scopes: null,
    fingerprint: keys.fingerprint,
    get secrets() {
      return secrets;
    },
    async apply(request: OutgoingRequest) {
      const q = request.path.indexOf('?');
      const { host, hostname, protocol } = hostOf(request.origin);
      // The Host the upstream sees is the signed one: undici sends a given host header as is.
      request.headers.host = host;
      const toSign: SignableRequest = {
        method: request.method,
        protocol,
        hostname,
        path: q === -1 ? request.path : request.path.slice(0, q),
        query: q === -1 ? {} : queryOf(request.path.slice(q + 1)),
        headers: { ...request.headers },
        body: request.body,
      };
      const signed = await keys.signer.sign(toSign);
      for (const name of SIGNATURE_HEADERS) {
        const v = signed.headers[name];
        if (v !== undefined) request.headers[name] = v;
      }
      secrets = callSecrets(keys, request.headers.authorization);
    },
  };
}

/**
 * The answer's secrets for one signed call: the key set's, plus the signature (which, echoed, a
 * client could replay within AWS's 15 minutes for the same request). A masker of 3–4 needles.
 */
function callSecrets(keys: KeySet, authorization: string | undefined): ResponseSecrets {
  const m = authorization ? /Signature=([0-9a-f]{64})/.exec(authorization) : null;
  if (m === null) return keys.secrets;
  // The key set's needles are reused as compiled; only the signature's forms are new.
  return { name: keys.secrets.name, masker: new ResponseMasker([m[1]], [], keys.secrets.masker, hexStringNeedles(m[1])) };
}

/** Temporary credentials from STS. */
interface TemporaryKeys {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiresAtMs: number;
}

/** The text of the first <tag> element of an XML answer (STS answers are flat and small). */
function xmlText(xml: string, tag: string): string | null {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  if (m === null) return null;
  return m[1].replace(/&(lt|gt|quot|apos|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e] as string);
}

/** Calls STS AssumeRole, signed with the configured keys. Throws an Error naming the reason (no secret in it). */
async function assumeRole(credential: AwsSigV4Credential, signer: SignatureV4, now: () => number): Promise<TemporaryKeys> {
  const role = credential.assumeRole!;
  const { host, hostname, protocol } = hostOf(role.stsEndpoint);
  const body = Buffer.from(
    new URLSearchParams({
      Action: 'AssumeRole',
      Version: '2011-06-15',
      RoleArn: role.roleArn,
      RoleSessionName: role.sessionName,
      DurationSeconds: String(role.durationS),
    }).toString(),
  );
  const signed = await signer.sign({
    method: 'POST',
    protocol,
    hostname,
    path: '/',
    query: {},
    headers: { host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body,
  });
  let status: number;
  let text: string;
  try {
    const res = await undiciRequest(`${role.stsEndpoint}/`, {
      method: 'POST',
      headers: signed.headers,
      body,
      headersTimeout: STS_TIMEOUT_MS,
      bodyTimeout: STS_TIMEOUT_MS,
      signal: AbortSignal.timeout(STS_TIMEOUT_MS),
    });
    status = res.statusCode;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > STS_MAX_BYTES) {
        res.body.destroy();
        throw new Error(`STS AssumeRole answered more than ${STS_MAX_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    const e = err as Error & { code?: string };
    throw new Error(`STS AssumeRole at ${role.stsEndpoint} failed: ${e.code ?? e.name}`);
  }
  if (status !== 200) throw new Error(`STS AssumeRole answered ${status} ${xmlText(text, 'Code') ?? ''}`.trim());
  const accessKeyId = xmlText(text, 'AccessKeyId');
  const secretAccessKey = xmlText(text, 'SecretAccessKey');
  const sessionToken = xmlText(text, 'SessionToken');
  const expiration = xmlText(text, 'Expiration');
  const expiresAtMs = expiration === null ? Number.NaN : Date.parse(expiration);
  if (!accessKeyId || !secretAccessKey || !sessionToken || !Number.isFinite(expiresAtMs))
    throw new Error('STS AssumeRole answered 200 without AccessKeyId, SecretAccessKey, SessionToken and Expiration');
  if (expiresAtMs - REFRESH_BEFORE_MS <= now()) throw new Error('STS AssumeRole answered credentials that expire within the refresh margin');
  return { accessKeyId, secretAccessKey, sessionToken, expiresAtMs };
}

/** io.jwt.decode, as OPA v1.21 (`v1/topdown/tokens.go`): a structural decode that verifies nothing. */
import { HostBuiltinError, stringArg, type HostBuiltin } from './args';

const BASE64URL = /^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$/;

/** OPA's base64url.decode: padding optional, alphabet strict (Buffer alone would skip junk). */
function base64UrlDecode(text: string, part: string): Buffer {
  const builtin = 'io.jwt.decode';
  let padded = text;
  if (!text.endsWith('=')) {
    if (text.length % 4 === 1) throw new HostBuiltinError(builtin, `JWT ${part} had invalid encoding`);
    padded += '='.repeat((4 - (text.length % 4)) % 4);
  }
  if (!BASE64URL.test(padded)) throw new HostBuiltinError(builtin, `JWT ${part} had invalid encoding`);
  return Buffer.from(padded, 'base64url');
}

function jsonObject(bytes: Buffer, part: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new HostBuiltinError('io.jwt.decode', `bad JWT ${part}: invalid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HostBuiltinError('io.jwt.decode', `bad JWT ${part}: decoded JSON type was not an Object`);
  }
  return value as Record<string, unknown>;
}

/** Structural decode of a JWS compact token, as OPA's io.jwt.decode; verifies nothing. */
function decodeJwt(token: unknown): [Record<string, unknown>, Record<string, unknown>, string] {
  const builtin = 'io.jwt.decode';
  const text = stringArg(token, 1, builtin);
  if (!text.includes('.')) throw new HostBuiltinError(builtin, 'encoded JWT had no period separators');
  const parts = text.split('.');
  if (parts.length !== 3) throw new HostBuiltinError(builtin, `encoded JWT must have 3 sections, found ${parts.length}`);
  const [headerPart, payloadPart, signaturePart] = parts;
  const header = jsonObject(base64UrlDecode(headerPart, 'header'), 'header');
  if (Object.hasOwn(header, 'enc')) throw new HostBuiltinError(builtin, 'JWT is a JWE object, which is not supported');
  const payloadBytes = base64UrlDecode(payloadPart, 'payload');
  if (header.cty === 'JWT') {
    // A nested token: OPA decodes the inner one (jwt.io quotes it, hence the trim).
    return decodeJwt(payloadBytes.toString('utf8').replace(/^["']+|["']+$/g, ''));
  }
  const payload = jsonObject(payloadBytes, 'payload');
  return [header, payload, base64UrlDecode(signaturePart, 'signature').toString('hex')];
}

/** The io.jwt.* host builtins, keyed by Rego name. */
export const jwtBuiltins: Readonly<Record<string, HostBuiltin>> = {
  'io.jwt.decode': (token: unknown) => decodeJwt(token),
};

/**
 * The response stages one by one (G2), on plain objects: which answers check-encoding refuses,
 * what decode-body and the bounded decoder do, what mask-headers drops and masks, and when
 * mask-body masks whole or streams. Integration tests (response-leaks.test.ts) prove the same
 * against misbehaving upstreams; these pin each rule.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { ResponseMasker } from '../../src/credential-injector/masker';
import type { GatewayError } from '../../src/errors';
import { createMetrics } from '../../src/observability/metrics';
import { createLogger } from '../../src/observability/logger';
import type { CallContext } from '../../src/proxy/context';
import type { PipelineDeps } from '../../src/proxy/deps';
import { BoundedDecoder, DecodeError } from '../../src/proxy/response/bounded-decoder';
import { checkEncoding } from '../../src/proxy/response/check-encoding';
import { decodeBody } from '../../src/proxy/response/decode-body';
import { maskBody } from '../../src/proxy/response/mask-body';
import { maskHeaders } from '../../src/proxy/response/mask-headers';
import type { UpstreamResponse } from '../../src/proxy/response/upstream-response';

const SECRET = 'resp-stage-secret-9c2d71';
const secrets = { name: 'api', masker: new ResponseMasker([SECRET]) };
const ctx = (withSecrets = true) =>
  ({ id: 'd-1', route: { name: 'api', kind: 'http' }, secrets: withSecrets ? secrets : null, mcp: null }) as unknown as CallContext;
const deps = { metrics: createMetrics(), log: createLogger('silent') } as unknown as PipelineDeps;

function response(upstream: Record<string, string | string[]>, extra: Partial<UpstreamResponse> = {}): UpstreamResponse {
  return { status: 200, upstream, headers: { ...upstream }, bodyless: false, sse: false, steps: [], whole: null, maskReported: false, ...extra };
}

const code = (f: () => void) => {
  try {
    f();
    return null;
  } catch (e) {
    return (e as GatewayError).code;
  }
};

describe('check-encoding', () => {
  test.each([['gzip'], ['x-gzip'], ['deflate'], ['br'], ['zstd'], ['identity'], [' GZIP ']])('accepts %s', (ce) => {
    expect(code(() => checkEncoding.run(response({ 'content-encoding': ce }), ctx(), deps))).toBeNull();
  });
  test.each([['compress'], ['gzip, br'], ['x-custom']])('refuses content-encoding %s with 502 PC_UPSTREAM_BAD_ENCODING', (ce) => {
    expect(code(() => checkEncoding.run(response({ 'content-encoding': ce }), ctx(), deps))).toBe('PC_UPSTREAM_BAD_ENCODING');
  });
  test('refuses a repeated Content-Encoding and a Transfer-Encoding other than chunked', () => {
    expect(code(() => checkEncoding.run(response({ 'content-encoding': ['gzip', 'gzip'] }), ctx(), deps))).toBe('PC_UPSTREAM_BAD_ENCODING');
    expect(code(() => checkEncoding.run(response({ 'transfer-encoding': 'gzip, chunked' }), ctx(), deps))).toBe('PC_UPSTREAM_BAD_ENCODING');
    expect(code(() => checkEncoding.run(response({ 'transfer-encoding': 'chunked' }), ctx(), deps))).toBeNull();
  });
  test('leaves alone what it need not read: no secrets on a REST route, or no body', () => {
    expect(code(() => checkEncoding.run(response({ 'content-encoding': 'x-custom' }), ctx(false), deps))).toBeNull();
    expect(code(() => checkEncoding.run(response({ 'content-encoding': 'x-custom' }, { bodyless: true }), ctx(), deps))).toBeNull();
  });
});

describe('decode-body and the bounded decoder', () => {
  test('a gzip answer gets a decoder, and loses Content-Encoding and Content-Length', () => {
    const r = response({ 'content-encoding': 'gzip', 'content-length': '20' });
    decodeBody.run(r, ctx(), deps);
    expect(r.steps).toHaveLength(1);
    expect(r.steps[0]).toBeInstanceOf(BoundedDecoder);
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers['content-length']).toBeUndefined();
  });

  const decode = async (coding: string, input: Buffer) => {
    const out: Buffer[] = [];
    await pipeline(Readable.from([input]), new BoundedDecoder(coding), collect(out));
    return Buffer.concat(out).toString();
  };

  test('decodes each coding, raw deflate too, and an empty body', async () => {
    expect(await decode('gzip', zlib.gzipSync('hello'))).toBe('hello');
    expect(await decode('deflate', zlib.deflateSync('hello'))).toBe('hello');
    expect(await decode('deflate', zlib.deflateRawSync('hello'))).toBe('hello');
    expect(await decode('br', zlib.brotliCompressSync('hello'))).toBe('hello');
    expect(await decode('zstd', zlib.zstdCompressSync('hello'))).toBe('hello');
    const out: Buffer[] = [];
    await pipeline(Readable.from([]), new BoundedDecoder('gzip'), collect(out));
    expect(out).toEqual([]);
  });

  test('a bomb is cut off past the ratio limit; garbage errors', async () => {
    await expect(decode('gzip', zlib.gzipSync(Buffer.alloc(8 * 1024 * 1024)))).rejects.toMatchObject({ code: 'upstream_decode_limit' });
    await expect(decode('gzip', Buffer.from('not gzip at all'))).rejects.toBeInstanceOf(DecodeError);
  });
});

describe('mask-headers', () => {
  test('drops a header whose name holds the secret (any case), masks values, keeps the rest', () => {
    const r = response({ [`x-t-${SECRET}`]: '1', 'x-echo': `token=${SECRET}`, 'x-plain': 'ok' });
    maskHeaders.run(r, ctx(), deps);
    expect(Object.keys(r.headers)).toEqual(['x-echo', 'x-plain']);
    expect(r.headers['x-echo']).toBe(`token=${'*'.repeat(SECRET.length)}`);
    const upper = response({ [`x-t-${SECRET.toUpperCase()}`]: '1' });
    maskHeaders.run(upper, ctx(), deps);
    expect(Object.keys(upper.headers)).toEqual([]);
  });
});

describe('mask-body', () => {
  test('a small body of known length is masked whole; a chunked one streams; nothing without secrets', () => {
    const small = response({ 'content-length': '30' });
    maskBody.run(small, ctx(), deps);
    expect(small.whole).not.toBeNull();
    const body = Buffer.from(`{"t":"${SECRET}"}`);
    small.whole!(body);
    expect(body.toString()).not.toContain(SECRET);
    const chunked = response({});
    maskBody.run(chunked, ctx(), deps);
    expect(chunked.whole).toBeNull();
    expect(chunked.steps).toHaveLength(1);
    const none = response({});
    maskBody.run(none, ctx(false), deps);
    expect(none.steps).toHaveLength(0);
  });
});

/** A writable that gathers the chunks written to it into `out`. */
function collect(out: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      out.push(chunk);
      done();
    },
  });
}

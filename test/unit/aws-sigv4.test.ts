/** The aws_sigv4 provider's own logic: a signature's needles, and the assume_role cache against a stand-in STS on 127.0.0.1:0. */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { awsSigV4Provider } from '../../src/credential-injector/aws-sigv4';
import { brokerContext } from '../../src/credential-injector/broker-context';
import { compileNeedles, hexStringNeedles } from '../../src/credential-injector/needles';
import type { Attachment, OutgoingRequest } from '../../src/credential-injector/provider';
import { Secret } from '../../src/secret';
import { Sha256Checksum } from '../../src/credential-injector/sha256-checksum';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

const asSet = (needles: Buffer[]) => needles.map((n) => n.toString('latin1')).sort();

test('G25: a signature is masked in the same encoded forms as any secret (hexStringNeedles = compileNeedles)', () => {
  for (let i = 0; i < 200; i++) {
    const sig = randomBytes(32).toString('hex');
    expect(asSet(hexStringNeedles(sig))).toEqual(asSet(compileNeedles([sig])));
  }
  // Anything that is not lower-case hex takes the general path.
  expect(asSet(hexStringNeedles('ABC/def+1'))).toEqual(asSet(compileNeedles(['ABC/def+1'])));
});

test('G25: the one-shot Sha256Checksum gives smithy the digests and signatures its own Hash gives', async () => {
  const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'tok' };
  const signers = [Hash.bind(null, 'sha256'), Sha256Checksum].map(
    (sha256) => new SignatureV4({ service: 's3', region: 'eu-west-1', credentials, sha256, uriEscapePath: false, applyChecksum: true }),
  );
  for (const body of [Buffer.alloc(0), randomBytes(1500), 'text body é', new Uint8Array(randomBytes(70))]) {
    const req = {
      method: 'PUT',
      protocol: 'https:',
      hostname: 'h.example',
      path: '/b/k%20x',
      query: { a: ['1', '2'], b: '' },
      headers: { host: 'h.example', 'x-amz-meta-a': 'v' },
      body,
    };
    const when = { signingDate: new Date('2026-12-03T10:00:00Z') };
    const [a, b] = await Promise.all(signers.map((s) => s.sign(structuredClone(req), when)));
    expect(b.headers).toEqual(a.headers);
  }
  // HMAC with a key, several updates, and reset: the same bytes as smithy's.
  const mine = new Sha256Checksum('key');
  const theirs = new Hash('sha256', 'key');
  for (const part of ['a', Buffer.from('b'), new Uint8Array([99])]) {
    mine.update(part);
    theirs.update(part);
  }
  expect(Buffer.from(await mine.digest())).toEqual(Buffer.from(await theirs.digest()));
  mine.reset();
  mine.update('x');
  expect(Buffer.from(await mine.digest())).toEqual(createHmac('sha256', 'key').update('x').digest());
  const plain = new Sha256Checksum();
  plain.update('x');
  plain.update('y');
  expect(Buffer.from(await plain.digest()).toString('hex')).toBe(createHash('sha256').update('xy').digest('hex'));
});

/** A stand-in STS for the cache logic (the signature is verified by moto in test/integration/aws-sigv4.test.ts). */
describe('assume_role cache', () => {
  let server: http.Server;
  let url: string;
  let calls = 0;
  let failing = false;
  let clock = Date.parse('2026-12-03T12:00:00Z');
  const now = () => clock;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      calls++;
      req.resume();
      req.on('end', () => {
        if (failing) {
          res.writeHead(500, { 'content-type': 'text/xml' });
          res.end('<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>');
          return;
        }
        const exp = new Date(clock + 3600_000).toISOString();
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIATEMP${calls}</AccessKeyId><SecretAccessKey>temp-secret-${calls}</SecretAccessKey><SessionToken>temp-token-${calls}-abcdef</SessionToken><Expiration>${exp}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`,
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const broker = brokerContext();
  broker.setSigner({ sign: (t: string) => `test-${t}` });
  const call = { identity: null, subjectToken: null, scopes: null };
  const provider = () =>
    awsSigV4Provider(
      {
        name: 'role',
        type: 'aws_sigv4',
        service: 's3',
        region: 'us-east-1',
        accessKeyId: new Secret('AKIABASE', 'test'),
        secretAccessKey: new Secret('base-secret', 'test'),
        sessionToken: null,
        assumeRole: { roleArn: 'arn:aws:iam::123456789012:role/r', sessionName: 'portcullis', durationS: 3600, stsEndpoint: url },
      },
      broker,
      { now },
    );
  const request = (): OutgoingRequest => ({
    method: 'PUT',
    origin: 'https://s3.example:8443',
    path: '/b/k?x=1',
    headers: { 'content-type': 'text/plain' },
    body: Buffer.from('hi'),
  });

  test('G25: one STS call for concurrent calls; cached until 5 minutes before expiry; then renewed beside the calls', async () => {
    const p = provider();
    const before = calls;
    const [a, b, c] = await Promise.all([p.obtain(call), p.obtain(call), p.obtain(call)]);
    expect(calls - before).toBe(1);
    expect(new Set([a.fingerprint, b.fingerprint, c.fingerprint]).size).toBe(1);
    const req = request();
    await a.apply(req);
    expect(req.headers.authorization).toMatch(
      new RegExp(
        `^AWS4-HMAC-SHA256 Credential=ASIATEMP${calls}/\\d{8}/us-east-1/s3/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$`,
      ),
    );
    expect(req.headers['x-amz-security-token']).toBe(`temp-token-${calls}-abcdef`);
    expect(req.headers.host).toBe('s3.example:8443');
    expect(req.headers['x-amz-content-sha256']).toBe(createHash('sha256').update('hi').digest('hex'));
    // The answer is masked of the temporary secret, the token and this call's signature.
    const sig = /Signature=([0-9a-f]{64})/.exec(req.headers.authorization)![1];
    expect(a.secrets.masker.maskString(`${sig} temp-secret-${calls} temp-token-${calls}-abcdef base-secret`)).not.toMatch(/[0-9a-z]/);
    // Still cached 54 minutes on (more than 5 minutes left): no STS call. 56 minutes on, renewal is
    // due: the call still signs at once with the current ones, and the renewal runs beside it.
    clock += 54 * 60_000;
    expect(p.obtain(call)).not.toBeInstanceOf(Promise);
    expect(calls - before).toBe(1);
    clock += 2 * 60_000;
    const during = p.obtain(call);
    expect(during).not.toBeInstanceOf(Promise);
    expect((during as Attachment).fingerprint).toBe(a.fingerprint);
    // The renewal runs beside the calls: wait (bounded) until its keys are the ones in use.
    let renewed = await p.obtain(call);
    for (let i = 0; i < 400 && renewed.fingerprint === a.fingerprint; i++) {
      await new Promise((r) => setTimeout(r, 5));
      renewed = await p.obtain(call);
    }
    expect(calls - before).toBe(2);
    expect(renewed.fingerprint).not.toBe(a.fingerprint);
    expect(p.health()).toMatchObject({ ok: true, fetches: 2, failures: 0 });
  });

  test('G25: a failed renewal signs with unexpired credentials without waiting; once they expired, 503 PC_CREDENTIAL_UNAVAILABLE', async () => {
    const p = provider();
    const first = await p.obtain(call);
    failing = true;
    try {
      clock += 56 * 60_000; // inside the renewal margin, not expired: signs with the current ones
      const fallback = p.obtain(call);
      expect(fallback).not.toBeInstanceOf(Promise);
      expect((fallback as Attachment).fingerprint).toBe(first.fingerprint);
      for (let i = 0; i < 200 && p.health().failures < 1; i++) await new Promise((r) => setTimeout(r, 5));
      expect(p.health()).toMatchObject({ ok: true, failures: 1 });
      clock += 4 * 60_000 + 1; // expired
      await expect(Promise.resolve().then(() => p.obtain(call))).rejects.toMatchObject({ code: 'PC_CREDENTIAL_UNAVAILABLE' });
      expect(p.health()).toMatchObject({ ok: false, failures: 2, lastError: 'STS AssumeRole answered 500 InternalFailure' });
      // Right after a failure, a call is refused without another STS request.
      const n = calls;
      expect(() => p.obtain(call)).toThrow(expect.objectContaining({ code: 'PC_CREDENTIAL_UNAVAILABLE' }));
      expect(calls).toBe(n);
    } finally {
      failing = false;
    }
  });
});

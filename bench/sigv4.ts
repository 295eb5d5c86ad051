/**
 * `npm run bench:sigv4`: the gateway CPU one SigV4-signed call costs in the credential broker:
 * obtain + apply (the signature over a 1 KB PUT's headers, path, query and body hash) + the
 * call's masker (the signature joins the secret key as a needle), against a static bearer's
 * obtain + apply. Measured in this process, CPU time per call, best of 5 batches.
 * Goal (issue 12): SigV4 at most 40 µs of gateway CPU per call.
 *
 * Settings: BENCH_CALLS per batch (5000).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AwsSigV4Credential, Credential } from '../src/config/types';
import { awsSigV4Provider } from '../src/credential-injector/aws-sigv4';
import { brokerContext } from '../src/credential-injector/broker-context';
import type { Attachment, CredentialProvider, OutgoingRequest } from '../src/credential-injector/provider';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { ResponseMasker } from '../src/credential-injector/masker';
import { hexStringNeedles } from '../src/credential-injector/needles';
import { Sha256Checksum } from '../src/credential-injector/sha256-checksum';
import { createProvider } from '../src/credential-injector/providers';
import { Secret } from '../src/secret';
import os from 'node:os';
import { numberSetting } from './settings';

const ROOT = path.resolve(__dirname, '..', '..');
const CALL = { identity: null, subjectToken: null, scopes: null } as const;
const BODY = Buffer.alloc(1024, 0x61);

function request(): OutgoingRequest {
  return {
    method: 'PUT',
    origin: 'https://s3.eu-west-1.amazonaws.com',
    path: '/bucket/dir/object%20one.bin?x-id=PutObject',
    headers: {
      'content-type': 'application/octet-stream',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': '127.0.0.1:8080',
      'accept-encoding': 'identity',
    },
    body: BODY,
  };
}

/** Microseconds of CPU per call of `f`, best of 5 batches after a warm-up. */
async function timeIt(f: () => void | Promise<void>, calls: number): Promise<number> {
  for (let i = 0; i < Math.min(calls, 500); i++) await f();
  let best = Infinity;
  for (let batch = 0; batch < 5; batch++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < calls; i++) await f();
    const d = process.cpuUsage(t0);
    best = Math.min(best, (d.user + d.system) / calls);
  }
  return best;
}

/** One call through the broker as the pipeline makes it: obtain, apply, read the answer's secrets. */
async function oneCall(p: CredentialProvider): Promise<void> {
  let a = p.obtain(CALL);
  if (a instanceof Promise) a = await a;
  const applied = (a as Attachment).apply(request());
  if (applied instanceof Promise) await applied;
  // Read the answer's masker as the pipeline does; its needles are checked once, before timing
  // (counting them is not per-call work).
  if ((a as Attachment).secrets.masker === undefined) throw new Error('no masker');
}

/** Fails unless a call through `p` leaves a masker with needles in it. */
async function checkMasked(p: CredentialProvider): Promise<void> {
  let a = p.obtain(CALL);
  if (a instanceof Promise) a = await a;
  const applied = (a as Attachment).apply(request());
  if (applied instanceof Promise) await applied;
  if ((a as Attachment).secrets.masker.needleCount === 0) throw new Error('no needles');
}

const SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const secret = (v: string) => new Secret(v, 'bench');

async function main(): Promise<void> {
  const calls = numberSetting('BENCH_CALLS', 5000);
  const broker = brokerContext();
  broker.setSigner({ sign: (t: string) => `bench-${t}` });
  const sigv4: AwsSigV4Credential = {
    name: 'aws',
    type: 'aws_sigv4',
    service: 's3',
    region: 'eu-west-1',
    accessKeyId: secret('AKIAIOSFODNN7EXAMPLE'),
    secretAccessKey: secret(SECRET_KEY),
    sessionToken: null,
    assumeRole: null,
  };
  const bearer: Credential = { name: 'api', type: 'bearer', token: secret('bench-upstream-token-not-a-secret'), rotation: null };
  const withToken: AwsSigV4Credential = { ...sigv4, name: 'aws-token', sessionToken: secret(`FwoGZXIvYXdzE${'x'.repeat(600)}`) };
  const bearerProvider = createProvider(bearer, broker);
  const baseMasker = new ResponseMasker([SECRET_KEY]);
  const signerWith = (sha256: ConstructorParameters<typeof SignatureV4>[0]['sha256']) =>
    new SignatureV4({
      service: 's3',
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: SECRET_KEY },
      sha256,
      uriEscapePath: false,
    });
  const signOnly = (signer: SignatureV4) => async () => {
    await signer.sign({
      method: 'PUT',
      protocol: 'https:',
      hostname: 'h',
      path: '/bucket/k',
      query: {},
      headers: { ...request().headers, host: 'h' },
      body: BODY,
    });
  };
  const sigv4Provider = awsSigV4Provider(sigv4, broker);
  const tokenProvider = awsSigV4Provider(withToken, broker);
  for (const p of [bearerProvider, sigv4Provider, tokenProvider]) await checkMasked(p);
  const result = {
    date: new Date().toISOString(),
    environment: { node: process.version, cpus: os.availableParallelism(), cpuModel: os.cpus()[0]?.model ?? 'unknown', load: os.loadavg() },
    callsPerBatch: calls,
    microsecondsPerCall: {
      static_bearer_obtain_apply: await timeIt(() => oneCall(bearerProvider), calls),
      sigv4_obtain_apply_mask: await timeIt(() => oneCall(sigv4Provider), calls),
      sigv4_with_session_token_obtain_apply_mask: await timeIt(() => oneCall(tokenProvider), calls),
      // Of which: the call's masker alone (the secret key and one signature, every encoded form).
      sigv4_call_masker_only: await timeIt(() => {
        const sig = randomBytes(32).toString('hex');
        new ResponseMasker([sig], [], baseMasker, hexStringNeedles(sig));
      }, calls),
      // Of which: @smithy/signature-v4's sign() of the 1 KB PUT alone, with smithy's Hash (a
      // hash object per digest) and with the gateway's one-shot Sha256Checksum.
      smithy_sign_only_hash_node: await timeIt(signOnly(signerWith(Hash.bind(null, 'sha256'))), calls),
      smithy_sign_only_one_shot: await timeIt(signOnly(signerWith(Sha256Checksum)), calls),
    },
    goalMicroseconds: 40,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `sigv4-${result.date.slice(0, 10)}.json`), `${JSON.stringify(result, null, 2)}\n`);
}

void main();

/**
 * G25 against a real SigV4 verifier: moto's S3, IAM and STS (test/fixtures/aws/moto-server.py,
 * installed by scripts/env.sh ensure_moto) recompute every request's signature with botocore
 * and refuse a mismatch. Calls go agent → gateway → moto; an echo upstream on a second route with
 * the same credential shows what the gateway sends and whether its answer leaks the signature.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const MOTO_PYTHON = process.env.PORTCULLIS_MOTO_PYTHON ?? path.join(os.homedir(), '.cache/portcullis/moto-5.2.5/bin/python');
const SKIP =
  process.env.PORTCULLIS_MOTO_SKIP ||
  (existsSync(MOTO_PYTHON) ? '' : `moto is not installed at ${MOTO_PYTHON}: run the tests with npm test (scripts/env.sh ensure_moto installs it)`);

const AGENT_KEY = 'agent-key-aws-sigv4-test-01';
const auth = { authorization: `Bearer ${AGENT_KEY}` };
const POLICY = `package portcullis
default decision := {"allow": false, "reasons": ["no"]}
decision := {"allow": true, "reasons": ["ok"]} if input.agent.id == "bot"
`;

interface Moto {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly roleArn: string;
  readonly bucket: string;
}

/** Starts moto and waits for its JSON line (it has created the user, key, role and bucket by then). */
function startMoto(): Promise<{ moto: Moto; child: ChildProcess }> {
  const child = spawn(MOTO_PYTHON, [path.join(__dirname, '../fixtures/aws/moto-server.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`moto did not start in 60 s: ${err.slice(-2000)}`));
    }, 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-8000);
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl === -1) return;
      clearTimeout(timer);
      resolve({ moto: JSON.parse(out.slice(0, nl)) as Moto, child });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`moto exited with ${code}: ${err.slice(-2000)}`));
    });
  });
}

/** A pass-through proxy to moto's STS that counts the AssumeRole calls it carries. */
function countingProxy(target: string): Promise<{ url: string; count: () => number; server: http.Server }> {
  let n = 0;
  const t = new URL(target);
  const server = http.createServer((req, res) => {
    n++;
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => r({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => n, server })),
  );
}

if (SKIP) console.warn(`aws-sigv4.test.ts is skipped: ${SKIP}`);
const suite = SKIP ? describe.skip : describe;

suite(SKIP ? `aws_sigv4 (skipped: ${SKIP})` : 'aws_sigv4 against moto (a real SigV4 verifier)', () => {
  let moto: Moto;
  let child: ChildProcess;
  let echo: Upstream;
  let sts: { url: string; count: () => number; server: http.Server };
  let gw: TestGateway;
  const body = randomBytes(1024);
  const WRONG_SECRET = 'wRoNgSeCrEt0000000000000000000000000000000';

  beforeAll(async () => {
    ({ moto, child } = await startMoto());
    echo = await startUpstream();
    sts = await countingProxy(moto.endpoint);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-sigv4-'));
    writeFileSync(path.join(dir, 'aws-secret'), `${moto.secretAccessKey}\n`);
    gw = await startTestGateway({
      dir,
      yaml: `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  aws: { type: aws_sigv4, service: s3, region: ${moto.region}, access_key_id_env: T_AWS_KEY_ID, secret_access_key_file: ./aws-secret }
  aws-wrong: { type: aws_sigv4, service: s3, region: ${moto.region}, access_key_id_env: T_AWS_KEY_ID, secret_access_key_env: T_AWS_WRONG }
  aws-role:
    type: aws_sigv4
    service: s3
    region: ${moto.region}
    access_key_id_env: T_AWS_KEY_ID
    secret_access_key_file: ./aws-secret
    assume_role: { role_arn: "${moto.roleArn}", session_name: agent-session, duration_s: 900, sts_endpoint: "${sts.url}" }
  aws-api: { type: aws_sigv4, service: execute-api, region: ${moto.region}, access_key_id_env: T_AWS_KEY_ID, secret_access_key_file: ./aws-secret }
  aws-role-s3:
    type: aws_sigv4
    service: s3
    region: ${moto.region}
    access_key_id_env: T_AWS_KEY_ID
    secret_access_key_file: ./aws-secret
    assume_role: { role_arn: "${moto.roleArn}", sts_endpoint: "${sts.url}" }
  aws-sts-down:
    type: aws_sigv4
    service: s3
    region: ${moto.region}
    access_key_id_env: T_AWS_KEY_ID
    secret_access_key_file: ./aws-secret
    assume_role: { role_arn: "${moto.roleArn}", sts_endpoint: "http://127.0.0.1:1" }
agents:
  - id: bot
    key_sha256: "${keyHash(AGENT_KEY)}"
routes:
  - { name: s3, prefix: /s3/, upstream: "${moto.endpoint}/", credential: aws }
  - { name: s3-wrong, prefix: /s3-wrong/, upstream: "${moto.endpoint}/", credential: aws-wrong }
  - { name: s3-role, prefix: /s3-role/, upstream: "${moto.endpoint}/", credential: aws-role-s3 }
  - { name: echo, prefix: /echo/, upstream: "${echo.url}/", credential: aws }
  - { name: echo-api, prefix: /echo-api/, upstream: "${echo.url}/", credential: aws-api }
  - { name: echo-role, prefix: /echo-role/, upstream: "${echo.url}/", credential: aws-role }
  - { name: echo-down, prefix: /echo-down/, upstream: "${echo.url}/", credential: aws-sts-down }
`,
      policies: { 'policy.rego': POLICY },
      env: { T_AWS_KEY_ID: moto.accessKeyId, T_AWS_WRONG: WRONG_SECRET },
    });
  }, 90_000);

  afterAll(async () => {
    await gw?.close();
    await echo?.close();
    await new Promise((r) => (sts ? sts.server.close(r) : r(undefined)));
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  });

  const key = 'dir/obj%20one%2Bplus.bin';

  test('G25: PUT then GET of a 1 KB object through the gateway: the store accepts the signature and returns the bytes', async () => {
    const put = await rawRequest(gw.gateway.url, {
      method: 'PUT',
      path: `/s3/${moto.bucket}/${key}`,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body,
    });
    expect(put.status).toBe(200);
    const got = await new Promise<{ status: number; bytes: Buffer }>((resolve, reject) => {
      const u = new URL(gw.gateway.url);
      http
        .get({ host: u.hostname, port: u.port, path: `/s3/${moto.bucket}/${key}`, headers: auth, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: Buffer.concat(chunks) }));
        })
        .on('error', reject);
    });
    expect(got.status).toBe(200);
    expect(got.bytes.equals(body)).toBe(true);
    // The query is signed too: a ListObjectsV2 with an escaped prefix finds the key under its decoded name.
    const list = await rawRequest(gw.gateway.url, { path: `/s3/${moto.bucket}?list-type=2&prefix=dir%2Fobj%20one`, headers: auth });
    expect(list.status).toBe(200);
    expect(list.body).toContain('<Key>dir/obj one+plus.bin</Key>');
  });

  test('G25: a wrong secret is refused by the verifier (it verifies), and the refusal is passed on, not retried unsigned', async () => {
    const r = await rawRequest(gw.gateway.url, { path: `/s3-wrong/${moto.bucket}/${key}`, headers: auth });
    expect(r.status).toBe(403);
    expect(r.body).toContain('SignatureDoesNotMatch');
  });

  test("G25: the agent's x-amz-content-sha256: UNSIGNED-PAYLOAD, x-amz-security-token and x-amz-date never reach the upstream", async () => {
    const before = echo.received.length;
    const r = await rawRequest(gw.gateway.url, {
      method: 'PUT',
      path: '/echo/b/k',
      headers: {
        ...auth,
        'content-type': 'application/octet-stream',
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        'x-amz-security-token': 'agent-own-session-token',
        'x-amz-date': '20200101T000000Z',
        x_amz_meta_owner: 'agent',
      },
      body,
    });
    expect(r.status).toBe(200);
    const got = echo.received[before];
    expect(echo.received.length).toBe(before + 1);
    // The payload hash is of the exact bytes received, never UNSIGNED-PAYLOAD.
    expect(got.headers['x-amz-content-sha256']).toBe(createHash('sha256').update(got.body).digest('hex'));
    expect(got.body.equals(body)).toBe(true);
    expect(got.headers['x-amz-security-token']).toBeUndefined();
    expect(got.headers['x-amz-date']).not.toBe('20200101T000000Z');
    expect(JSON.stringify(got.headers)).not.toContain('agent-own-session-token');
    expect(Object.keys(got.headers).filter((h) => h.includes('meta'))).toEqual([]);
    // The Host it saw is the signed one, and the signature names what it covers.
    expect(got.headers.host).toBe(new URL(echo.url).host);
    const signedHeaders = /SignedHeaders=([^,]+)/.exec(String(got.headers.authorization))![1].split(';');
    expect(signedHeaders).toEqual(expect.arrayContaining(['host', 'x-amz-date', 'x-amz-content-sha256', 'content-type', 'accept-encoding']));
    // The same call to the real store is accepted: what the agent sent did not enter the signature.
    const real = await rawRequest(gw.gateway.url, {
      method: 'PUT',
      path: `/s3/${moto.bucket}/agent-headers`,
      headers: { ...auth, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-security-token': 'agent-own-session-token' },
      body,
    });
    expect(real.status).toBe(200);
  });

  test('G25: X-Amz-* query parameters (presigned-URL authentication) from the agent are refused before the policy, nothing forwarded', async () => {
    const before = echo.received.length;
    for (const q of [
      'X-Amz-Security-Token=agent-token',
      'x-amz-signature=00&x-id=GetObject',
      'X-Amz-Credential=AKIAAGENT%2F20261203%2Fus-east-1%2Fs3%2Faws4_request',
    ]) {
      const r = await rawRequest(gw.gateway.url, { path: `/echo/b/k?${q}`, headers: auth });
      expect(r.status).toBe(400);
      expect(r.headers['x-portcullis-error']).toBe('PC_BAD_REQUEST');
    }
    expect(echo.received.length).toBe(before);
  });

  /** botocore's signature (and canonical request) of what the echo upstream received last. */
  function botocoreSignature(got: {
    method: string;
    url: string;
    headers: http.IncomingHttpHeaders;
    body: Buffer;
  }): Promise<{ signature: string; canonical: string }> {
    return new Promise((resolve, reject) => {
      const py = spawn(MOTO_PYTHON, [path.join(__dirname, '../fixtures/aws/botocore-signature.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      py.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      py.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      py.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`botocore-signature.py: ${err}`))));
      py.stdin.end(
        JSON.stringify({ method: got.method, target: got.url, headers: got.headers, body_b64: got.body.toString('base64'), secret: moto.secretAccessKey }),
      );
    });
  }

  test.each([
    ['s3', '/echo/dir/a%20b%2Bc%C3%A9.txt', '/dir/a%20b%2Bc%C3%A9.txt'],
    ['execute-api', '/echo-api/v1/items/a%20b%2Bc%C3%A9/x', '/v1/items/a%2520b%252Bc%25C3%25A9/x'],
  ])('G25: %s: botocore, an independent implementation, computes the same signature over the path as received', async (_service, target, canonicalPath) => {
    const before = echo.received.length;
    const r = await rawRequest(gw.gateway.url, { method: 'POST', path: target, headers: { ...auth, 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(r.status).toBe(200);
    const got = echo.received[before];
    const { signature, canonical } = await botocoreSignature(got);
    // S3 signs the path as sent; other services URI-encode it once more.
    expect(canonical.split('\n')[1]).toBe(canonicalPath);
    expect(String(got.headers.authorization)).toContain(`Signature=${signature}`);
  });

  test('G25: an upstream that echoes the request has the signature, the secret and the session token masked', async () => {
    const before = echo.received.length;
    const r = await rawRequest(gw.gateway.url, { path: '/echo/echo-me', headers: auth });
    expect(r.status).toBe(200);
    const sent = echo.received[before];
    const signature = /Signature=([0-9a-f]{64})/.exec(String(sent.headers.authorization))![1];
    expect(r.body).not.toContain(signature);
    expect(r.body).toContain('Signature=****');
    // With a role, the session token travels in x-amz-security-token: echoed, it is masked too.
    const role = await rawRequest(gw.gateway.url, { path: '/echo-role/echo-me', headers: auth });
    expect(`${role.status} ${role.body}`).toMatch(/^200 /);
    const roleSent = echo.received[echo.received.length - 1];
    const token = String(roleSent.headers['x-amz-security-token']);
    expect(token.length).toBeGreaterThan(20);
    expect(role.body).not.toContain(token);
    expect(role.body).not.toContain(/Signature=([0-9a-f]{64})/.exec(String(roleSent.headers.authorization))![1]);
  });

  test('G25: an upstream that echoes the secret access key has it masked', async () => {
    const leaky = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-debug': moto.secretAccessKey });
      res.end(`secret=${moto.secretAccessKey} b64=${Buffer.from(moto.secretAccessKey).toString('base64')}`);
    });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-sigv4-leak-'));
    const leakGw = await startTestGateway({
      dir,
      yaml: `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  aws: { type: aws_sigv4, service: execute-api, region: ${moto.region}, access_key_id_env: T_AWS_KEY_ID, secret_access_key_env: T_AWS_SECRET }
agents:
  - id: bot
    key_sha256: "${keyHash(AGENT_KEY)}"
routes:
  - { name: leaky, prefix: /leaky/, upstream: "${leaky.url}/", credential: aws }
`,
      policies: { 'policy.rego': POLICY },
      env: { T_AWS_KEY_ID: moto.accessKeyId, T_AWS_SECRET: moto.secretAccessKey },
    });
    try {
      const r = await rawRequest(leakGw.gateway.url, { path: '/leaky/x', headers: auth });
      expect(r.status).toBe(200);
      expect(`${JSON.stringify(r.headers)}${r.body}`).not.toContain(moto.secretAccessKey);
      expect(r.body).not.toContain(Buffer.from(moto.secretAccessKey).toString('base64'));
    } finally {
      await leakGw.close();
      await leaky.close();
    }
  });

  test('G25: the decision record carries the access key id’s fingerprint, never the key, the secret or a signature', async () => {
    const r = await rawRequest(gw.gateway.url, { path: '/echo/audited', headers: auth });
    expect(r.status).toBe(200);
    const signature = /Signature=([0-9a-f]{64})/.exec(String(echo.received[echo.received.length - 1].headers.authorization))![1];
    const rec = await gw.waitForAudit((x) => x.type === 'decision' && x.route === 'echo' && x.path === '/echo/audited');
    expect(rec.credential).toBe('aws');
    expect(rec.credential_fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
    // One key, one fingerprint, on every route that uses it; another key id, another one.
    const s3 = await gw.waitForAudit((x) => x.type === 'decision' && x.route === 's3');
    expect(s3.credential_fingerprint).toBe(rec.credential_fingerprint);
    const role = await gw.waitForAudit((x) => x.type === 'decision' && x.route === 'echo-role');
    expect(role.credential_fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
    expect(role.credential_fingerprint).not.toBe(rec.credential_fingerprint);
    const trail = gw.auditText() + gw.logs();
    for (const v of [moto.accessKeyId, moto.secretAccessKey, signature]) expect(trail).not.toContain(v);
  });

  test('G25: assume_role signs with the role’s temporary credentials, fetched once for concurrent calls and cached', async () => {
    const before = sts.count();
    const calls = await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        rawRequest(gw.gateway.url, {
          method: 'PUT',
          path: `/s3-role/${moto.bucket}/role-${i}`,
          headers: { ...auth, 'content-type': 'text/plain' },
          body: `n${i}`,
        }),
      ),
    );
    expect(calls.map((c) => c.status)).toEqual([200, 200, 200, 200, 200]);
    const got = await rawRequest(gw.gateway.url, { path: `/s3-role/${moto.bucket}/role-3`, headers: auth });
    expect(got.status).toBe(200);
    expect(got.body).toBe('n3');
    // aws-role-s3 had fetched nothing before: five concurrent calls, one AssumeRole; the GET is a cache hit.
    expect(sts.count() - before).toBe(1);
  });

  test('G25: STS unreachable: 503 PC_CREDENTIAL_UNAVAILABLE, audited, nothing forwarded', async () => {
    const before = echo.received.length;
    const r = await rawRequest(gw.gateway.url, { path: '/echo-down/x', headers: auth });
    expect(r.status).toBe(503);
    expect(r.headers['x-portcullis-error']).toBe('PC_CREDENTIAL_UNAVAILABLE');
    expect(echo.received.length).toBe(before);
    const rec = await gw.waitForAudit((x) => x.route === 'echo-down' && x.code === 'PC_CREDENTIAL_UNAVAILABLE');
    expect(rec.type).toBe('decision');
  });
});

describe('aws_sigv4 configuration', () => {
  const base = (cred: string) => `
listen: 127.0.0.1:0
admin: { enabled: false }
policy: { path: ./policies, watch: false }
audit: { path: ./audit }
credentials:
  aws:
${cred}
routes:
  - { name: s3, prefix: /s3/, upstream: "http://127.0.0.1:9/", credential: aws }
`;
  const load = (yaml: string, env: NodeJS.ProcessEnv = { K: 'AKIAEXAMPLE', S: 'secret' }) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-sigv4-config-'));
    const file = path.join(dir, 'portcullis.yaml');
    mkdirSync(path.join(dir, 'policies'));
    writeFileSync(file, yaml);
    try {
      parseConfig(yaml, file, { env });
      return 'loaded';
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return e.message;
    }
  };

  test('an unreadable key file does not start, located at its key', () => {
    const msg = load(base('    type: aws_sigv4\n    service: s3\n    region: us-east-1\n    access_key_id_env: K\n    secret_access_key_file: ./no-such-file'));
    expect(msg).toMatch(/portcullis\.yaml:12/);
    expect(msg).toContain('secret_access_key_file');
  });

  test('missing keys, both sources, an unknown key and a bad role ARN are located errors', () => {
    expect(load(base('    type: aws_sigv4\n    service: s3\n    region: us-east-1\n    access_key_id_env: K'))).toMatch(
      /credentials\.aws.*secret_access_key_env or secret_access_key_file|secret_access_key_env or secret_access_key_file/s,
    );
    expect(
      load(
        base(
          '    type: aws_sigv4\n    service: s3\n    region: us-east-1\n    access_key_id_env: K\n    secret_access_key_env: S\n    secret_access_key_file: ./x',
        ),
      ),
    ).toContain('exactly one source');
    expect(
      load(
        base('    type: aws_sigv4\n    service: s3\n    region: us-east-1\n    access_key_id_env: K\n    secret_access_key_env: S\n    signed_headers: [a]'),
      ),
    ).toMatch(/signed_headers/);
    expect(
      load(
        base(
          '    type: aws_sigv4\n    service: s3\n    region: us-east-1\n    access_key_id_env: K\n    secret_access_key_env: S\n    assume_role: { role_arn: "nope" }',
        ),
      ),
    ).toMatch(/role_arn|role ARN/);
    expect(load(base('    type: aws_sigv4\n    service: s3\n    region: us-east-1\n    access_key_id_env: K\n    secret_access_key_env: S'))).toBe('loaded');
  });
});

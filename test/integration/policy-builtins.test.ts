/**
 * Host builtins end to end: the real OPA compiler builds a Rego v1 policy to Wasm against the
 * capabilities file from writeCapabilitiesFile, and the real opa-wasm SDK evaluates it with
 * the host builtins as the engine passes them (builtinsForLoadPolicy: our sprintf, not the SDK's).
 * Also checks that a builtin the engine cannot run is refused by `opa build`.
 *
 * Needs the OPA CLI: $PORTCULLIS_OPA, or ~/.cache/portcullis/opa-v1.21.1/opa.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { HostBuiltinError, builtinsForLoadPolicy } from '../../src/policy/builtins';
import { writeCapabilitiesFile } from '../../src/policy/capabilities';

const run = promisify(execFile);
const OPA = process.env.PORTCULLIS_OPA ?? path.join(os.homedir(), '.cache/portcullis/opa-v1.21.1/opa');

const POLICY = `package test

token := io.jwt.decode(input.token)

claims := token[1]

result := {
	"clock_utc": time.clock(input.ns),
	"clock_ny": time.clock([input.ns, "America/New_York"]),
	"date_in_zone": time.date([input.ns, input.zone]),
	"weekday": time.weekday(input.ns),
	"weekday_tokyo": time.weekday([input.ns + 10 * 3600 * 1000000000, "Asia/Tokyo"]),
	"after_input": time.now_ns() > input.ns,
	"expired": claims.exp * 1000000000 < time.now_ns(),
	"valid_for": time.parse_duration_ns(input.ttl),
	"issued": time.parse_rfc3339_ns(input.issued),
	"subject": claims.sub,
	"alg": token[0].alg,
	"signature": token[2],
	"greeting": sprintf("hello %s, %v", [claims.sub, {"exp": claims.exp}]),
}
`;

/** The files of a (ustar) tar archive, by name: enough for the bundle `opa build` writes. */
function untar(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let offset = 0; offset + 512 <= archive.length; ) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const text = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const size = parseInt(text(124, 12).trim() || '0', 8);
    const prefix = text(345, 155);
    const name = prefix ? `${prefix}/${text(0, 100)}` : text(0, 100);
    if (header[156] === 0x30 || header[156] === 0) files.set(name, archive.subarray(offset + 512, offset + 512 + size));
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('host builtins in a real Wasm policy', () => {
  let dir: string;
  let caps: string;
  let policy: LoadedPolicy;

  beforeAll(async () => {
    if (!existsSync(OPA)) throw new Error(`OPA CLI not found at ${OPA}; set PORTCULLIS_OPA`);
    dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-builtins-'));
    caps = path.join(dir, 'caps.json');
    await writeCapabilitiesFile(OPA, caps);
    await mkdir(path.join(dir, 'policy'));
    await writeFile(path.join(dir, 'policy', 'test.rego'), POLICY);
    const bundle = path.join(dir, 'bundle.tar.gz');
    await run(OPA, ['build', '-t', 'wasm', '-e', 'test/result', '--capabilities', caps, '-o', bundle, path.join(dir, 'policy')]);
    const wasm = untar(gunzipSync(await readFile(bundle))).get('/policy.wasm');
    if (!wasm) throw new Error('bundle has no /policy.wasm');
    policy = await loadPolicy(wasm, undefined, builtinsForLoadPolicy());
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const token = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'agent-7', exp: 1710513045 })}.3q2-7w`;
  const input = {
    ns: 1710513045000000000,
    zone: 'Pacific/Kiritimati',
    token,
    ttl: '1d12h',
    issued: '2024-03-15T10:30:45.123456-04:00',
  };

  it('writes a capabilities file with our builtins and without the ones nobody runs', async () => {
    const names = (JSON.parse(await readFile(caps, 'utf8')) as { builtins: Array<{ name: string }> }).builtins.map((b) => b.name);
    expect(names).toEqual(expect.arrayContaining(['time.clock', 'io.jwt.decode', 'sprintf', 'glob.match', 'eq']));
    for (const absent of ['http.send', 'crypto.sha256', 'time.parse_ns', 'internal.print', 'opa.runtime']) {
      expect(names).not.toContain(absent);
    }
  });

  it('evaluates time.* and io.jwt.decode through the SDK', () => {
    expect(policy.evaluate(input, 'test/result')).toEqual([
      {
        result: {
          clock_utc: [14, 30, 45],
          clock_ny: [10, 30, 45],
          date_in_zone: [2024, 3, 16], // UTC+14
          weekday: 'Friday',
          weekday_tokyo: 'Saturday',
          after_input: true,
          expired: true,
          valid_for: 129_600_000_000_000,
          issued: 1710513045123456000,
          subject: 'agent-7',
          alg: 'HS256',
          signature: 'deadbeef',
          greeting: 'hello agent-7, {"exp": 1710513045}',
        },
      },
    ]);
  });

  it('fails the whole evaluation with an Error when a builtin throws, and recovers after', () => {
    expect(() => policy.evaluate({ ...input, token: 'not.a.jwt.at-all' }, 'test/result')).toThrow(HostBuiltinError);
    expect(() => policy.evaluate({ ...input, token: 'not.a.jwt.at-all' }, 'test/result')).toThrow(
      /^io\.jwt\.decode: encoded JWT must have 3 sections, found 4$/,
    );
    expect(() => policy.evaluate({ ...input, zone: 'Nowhere/Atlantis' }, 'test/result')).toThrow(/unknown time zone Nowhere\/Atlantis/);
    expect(policy.evaluate(input, 'test/result')[0].result.subject).toBe('agent-7');
  });

  it.each([
    ['crypto.sha256', 'allow if crypto.sha256(input.body) == input.digest'],
    ['http.send', 'allow if http.send({"method": "GET", "url": input.url}).status_code == 200'],
    ['time.parse_ns', 'allow if time.parse_ns("2006-01-02", input.day) > 0'],
  ])('refuses at build time a policy calling %s', async (builtin, rule) => {
    const bad = path.join(dir, `bad-${builtin}`);
    await mkdir(bad);
    await writeFile(path.join(bad, 'bad.rego'), `package bad\n\n${rule}\n`);
    const output = await run(OPA, ['build', '-t', 'wasm', '-e', 'bad/allow', '--capabilities', caps, '-o', path.join(bad, 'bundle.tar.gz'), bad]).then(
      () => 'built',
      (err: { stdout: string; stderr: string }) => err.stdout + err.stderr, // OPA reports on stdout
    );
    expect(output).toContain(`rego_type_error: undefined function ${builtin}`);
  });
});

/**
 * The Kubernetes example's own configuration (examples/kubernetes/configmap.yaml, with its
 * policy and secret.example.yaml's values) started the way deployment.yaml runs it: on a
 * read-only root filesystem where only the audit volume, the policy emptyDir and /tmp are
 * writable and the Secrets are mounted read-only. A user+mount namespace (`unshare -rm`) lays
 * that out under a scratch "root" whose paths mirror the image; the config's paths are prefixed
 * with it, its listeners moved to port 0 and its upstream pointed at a local server.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CLI, callOnce, killGatewaysAndRemove, spawnGateway, trailRecords } from '../helpers/gateway-process';
import { startUpstream, type Upstream } from '../helpers/harness';

const EXAMPLE = path.resolve(__dirname, '../../examples/kubernetes');
const probe = spawnSync('unshare', ['-rm', 'true'], { encoding: 'utf8' });
const unshareWorks = probe.status === 0;
/** Runs the test only where a user+mount namespace can be made, and says why it is skipped elsewhere. */
const nsTest = unshareWorks
  ? test
  : (name: string, fn: () => Promise<void>, timeout?: number) =>
      test.skip(`${name} (skipped: 'unshare -rm' fails here: ${probe.error?.message ?? probe.stderr.trim()})`, fn, timeout);

/** The named manifests of a multi-document YAML file in the example. */
function manifests(file: string): Map<string, Record<string, any>> {
  const docs = parseAllDocuments(readFileSync(path.join(EXAMPLE, file), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  return new Map(docs.map((d) => [d.metadata.name as string, d]));
}

/** Replaces `from` with `to`, insisting that it occurs: a changed example must fail here, not pass vacuously. */
function substitute(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  if (out === text) throw new Error(`the example's portcullis.yaml no longer contains ${from}`);
  return out;
}

let base: string;
let upstream: Upstream;
/** Gateway pids inside the namespace: the wrapper shell does not pass signals on. */
const gatewayPids = new Set<number>();

beforeAll(async () => {
  base = mkdtempSync(path.join(os.tmpdir(), 'portcullis-k8s-'));
  upstream = await startUpstream();
});

afterAll(async () => {
  for (const pid of gatewayPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  killGatewaysAndRemove(base);
  await upstream.close();
});

/** The example laid out under `root` as the pod sees it; returns the config file and the agent key. */
function layOut(root: string, edit: (config: string) => string = (c) => c): { config: string; agentKey: string } {
  const configMaps = manifests('configmap.yaml');
  const secrets = manifests('secret.example.yaml');
  for (const d of [
    'etc/portcullis/config',
    'etc/portcullis/policies',
    'run/secrets/portcullis',
    'run/secrets/portcullis-audit',
    'var/lib/portcullis/audit',
    'tmp',
  ])
    mkdirSync(path.join(root, d), { recursive: true });
  let config = String(configMaps.get('portcullis-config')!.data['portcullis.yaml']);
  for (const prefix of ['/etc/portcullis/', '/run/secrets/', '/var/lib/portcullis/'])
    config = substitute(config, new RegExp(`(?<=[\\s:])${prefix}`, 'g'), `${root}${prefix}`);
  config = substitute(config, 'listen: 127.0.0.1:8080', 'listen: 127.0.0.1:0');
  config = substitute(config, 'listen: 0.0.0.0:9090', 'listen: 127.0.0.1:0');
  config = substitute(config, 'https://tools.example.com/api/', `${upstream.url}/api/`);
  const configFile = path.join(root, 'etc/portcullis/config/portcullis.yaml');
  writeFileSync(configFile, edit(config));
  // What deployment.yaml's start command copies out of the portcullis-policies mount.
  for (const [name, rego] of Object.entries(configMaps.get('portcullis-policies')!.data as Record<string, string>))
    writeFileSync(path.join(root, 'etc/portcullis/policies', name), rego);
  const token = path.join(root, 'run/secrets/portcullis/tools-api-token');
  writeFileSync(token, secrets.get('portcullis-upstream-credentials')!.stringData['tools-api-token']);
  // The signing key Secret, made as secret.example.yaml says; 0440 as its defaultMode (288).
  const signingKey = path.join(root, 'run/secrets/portcullis-audit/signing-key');
  execFileSync(process.execPath, [CLI, 'audit', 'keygen', '--name', 'portcullis.example.com/support-agent', '--output', signingKey]);
  for (const f of [token, signingKey]) chmodSync(f, 0o440);
  return { config: configFile, agentKey: secrets.get('support-agent-key')!.stringData['agent-key'] };
}

/**
 * The shell that makes the pod's filesystem in a new user+mount namespace, then execs the
 * gateway: the whole root read-only, the audit volume, the policy emptyDir and /tmp writable,
 * the config and the Secrets read-only mounts of their own.
 */
function namespaceScript(root: string): string {
  const script = path.join(base, `${path.basename(root)}.sh`);
  writeFileSync(
    script,
    `set -eu
R='${root}'
mount --bind "$R" "$R"
for d in var/lib/portcullis/audit etc/portcullis/policies; do mount --bind "$R/$d" "$R/$d"; done
mount -t tmpfs -o size=32m tmpfs "$R/tmp"
for d in etc/portcullis/config run/secrets/portcullis run/secrets/portcullis-audit; do mount --bind "$R/$d" "$R/$d"; mount -o remount,bind,ro "$R/$d"; done
mount -o remount,bind,ro "$R"
mount -o remount,bind,ro /
TMPDIR="$R/tmp" exec "$@"
`,
  );
  return `unshare -rm sh '${script}' $GATEWAY`;
}

nsTest(
  'the example starts on a read-only root, serves an allowed call and writes its trail into the audit volume',
  async () => {
    const root = path.join(base, 'pod');
    const { config, agentKey } = layOut(root);
    const gw = await spawnGateway(config, { shell: namespaceScript(root), timeoutMs: 30_000 });
    gatewayPids.add(gw.pid);
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });
    const call = await callOnce(gw.url, '/tools/tickets', agentKey);
    expect(call.status).toBe(200);
    expect(upstream.received.at(-1)).toMatchObject({
      url: '/api/tickets',
      headers: { authorization: `Bearer ${readFileSync(path.join(root, 'run/secrets/portcullis/tools-api-token'), 'utf8')}` },
    });
    process.kill(gw.pid, 'SIGTERM');
    expect((await gw.exited).code).toBe(0);
    gatewayPids.delete(gw.pid);
    const audit = path.join(root, 'var/lib/portcullis/audit');
    const records = trailRecords(audit);
    expect(records.map((r) => r.type)).toEqual(expect.arrayContaining(['gateway_start', 'decision', 'outcome', 'gateway_stop']));
    expect(records.find((r) => r.type === 'decision')).toMatchObject({ decision_id: call.decisionId, agent: 'support-agent', decision: 'allow' });
    // The key came from the Secret: nothing was written beside the volume, the Secret is unchanged.
    expect(existsSync(path.join(root, 'var/lib/portcullis/audit.key'))).toBe(false);
    expect(readdirSync(path.join(root, 'var/lib/portcullis'))).toEqual(['audit']);
  },
  60_000,
);

nsTest(
  'without audit.signing_key on a read-only root, start-up fails naming audit.signing_key and the key path',
  async () => {
    const root = path.join(base, 'nokey');
    const { config } = layOut(root, (c) => substitute(c, /\n {2}signing_key:\n {4}file: \S+/, ''));
    const failed = await spawnGateway(config, { shell: namespaceScript(root), timeoutMs: 30_000 }).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(5);
    expect(failed?.stderr).toContain(`cannot create the audit signing key ${root}/var/lib/portcullis/audit.key (EROFS)`);
    expect(failed?.stderr).toContain('set audit.signing_key');
  },
  60_000,
);

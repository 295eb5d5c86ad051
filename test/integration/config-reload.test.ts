/**
 * Config reload without restart, through a running gateway: routes, agents and credentials are
 * swapped after full validation; a bad file keeps the running config and is audited; what needs
 * a restart is refused; calls under way finish on the config they started with; under load no
 * call fails; a change of the file and SIGHUP to the real CLI both reload.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { startGateway } from '../../src/gateway';
import { createLogger } from '../../src/observability/logger';
import { BOT_POLICY, killGatewaysAndRemove, scratchDir, spawnGateway, trailRecords } from '../helpers/gateway-process';
import { keyHash, rawRequest, startTestGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness';

const KEY_A = 'reload-key-a';
const KEY_B = 'reload-key-b';
let upstream: Upstream;
let slow: Upstream;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function yaml(o: { key: string; token: string; routes?: string; listen?: string }): string {
  return [
    `listen: ${o.listen ?? '127.0.0.1:0'}`,
    'admin: { enabled: false }',
    'policy: { path: ./policies, watch: false }',
    'audit: { path: ./audit, durability: relaxed }',
    `agents:\n  - id: bot\n    key_sha256: "${keyHash(o.key)}"`,
    `credentials:\n  tok: { type: bearer, env: ${o.token} }`,
    'routes:',
    `  - name: up\n    prefix: /up/\n    upstream: ${upstream.url}/\n    credential: tok`,
    `  - name: slow\n    prefix: /slow/\n    upstream: ${slow.url}/`,
    o.routes ?? '',
  ].join('\n');
}

const ENV = { RELOAD_TOKEN_1: 'upstream-token-one', RELOAD_TOKEN_2: 'upstream-token-two' };
// A reload reads the file again with the process environment (the gateway's default loader).
Object.assign(process.env, ENV);

beforeAll(async () => {
  upstream = await startUpstream();
  slow = await startUpstream((_req, res) => setTimeout(() => res.end('slow done'), 600));
});
afterAll(async () => {
  await upstream.close();
  await slow.close();
});

describe('gateway.reload()', () => {
  let gw: TestGateway;
  let file: string;
  const write = (text: string) => writeFileSync(file, text);

  beforeAll(async () => {
    gw = await startTestGateway({ yaml: yaml({ key: KEY_A, token: 'RELOAD_TOKEN_1' }), policies: { 'p.rego': BOT_POLICY }, env: ENV });
    file = path.join(gw.dir, 'portcullis.yaml');
  });
  afterAll(() => gw.close());

  test('G30: a valid change swaps routes, agents and credentials, and is audited with its sha256', async () => {
    expect((await rawRequest(gw.gateway.url, { path: '/up/x', headers: { authorization: `Bearer ${KEY_A}` } })).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe('Bearer upstream-token-one');
    const before = sha256(file);
    write(yaml({ key: KEY_B, token: 'RELOAD_TOKEN_2', routes: `  - name: extra\n    prefix: /extra/\n    upstream: ${upstream.url}/` }));
    expect(await gw.gateway.reload()).toEqual({ result: 'loaded' });
    const rec = await gw.waitForAudit((x) => x.type === 'config_loaded');
    expect(rec).toMatchObject({ file, sha256: sha256(file), previous_sha256: before, routes: ['up', 'slow', 'extra'] });
    // The old key is gone, the new one works, the new credential is attached, the new route exists.
    expect((await rawRequest(gw.gateway.url, { path: '/up/x', headers: { authorization: `Bearer ${KEY_A}` } })).status).toBe(401);
    expect((await rawRequest(gw.gateway.url, { path: '/up/x', headers: { authorization: `Bearer ${KEY_B}` } })).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe('Bearer upstream-token-two');
    expect((await rawRequest(gw.gateway.url, { path: '/extra/y', headers: { authorization: `Bearer ${KEY_B}` } })).status).toBe(200);
  });

  test('G30: a bad file keeps the running config, names file, line and key path, and writes config_rejected', async () => {
    const good = readFileSync(file, 'utf8');
    write(good.replace('prefix: /extra/', 'prefix: extra-without-slash'));
    const out = await gw.gateway.reload();
    expect(out.result).toBe('rejected');
    expect(out.error).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: routes\\[2\\]\\.prefix: .*\\[CONFIG_FORMAT\\]`));
    const rec = await gw.waitForAudit((x) => x.type === 'config_rejected');
    expect(rec).toMatchObject({ file, code: 'CONFIG_FORMAT', key_path: 'routes[2].prefix', sha256: sha256(file) });
    expect(gw.logs()).toContain('configuration change rejected');
    expect((await rawRequest(gw.gateway.url, { path: '/extra/y', headers: { authorization: `Bearer ${KEY_B}` } })).status).toBe(200);
    write(good);
  });

  test('G30: a change that needs a restart is refused with CONFIG_RESTART_REQUIRED', async () => {
    const good = readFileSync(file, 'utf8');
    write(good.replace('listen: 127.0.0.1:0', 'listen: 127.0.0.1:1'));
    const out = await gw.gateway.reload();
    expect(out).toMatchObject({ result: 'rejected', error: expect.stringMatching(/listen cannot change without a restart.*\[CONFIG_RESTART_REQUIRED\]/) });
    write(good);
  });

  test('G30: a call under way finishes on the config it started with', async () => {
    const inFlight = rawRequest(gw.gateway.url, { path: '/slow/wait', headers: { authorization: `Bearer ${KEY_B}` } });
    await new Promise((r) => setTimeout(r, 150));
    // The new config drops the slow route and the agent key the call used.
    write(yaml({ key: KEY_A, token: 'RELOAD_TOKEN_1' }).replace(/ {2}- name: slow\n.*\n.*\n/, ''));
    expect((await gw.gateway.reload()).result).toBe('loaded');
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(r.body).toBe('slow done');
    expect((await rawRequest(gw.gateway.url, { path: '/slow/wait', headers: { authorization: `Bearer ${KEY_A}` } })).status).toBe(404);
  });
});

test('G30: under load, with reloads back and forth, no call fails', async () => {
  const gw = await startTestGateway({ yaml: yaml({ key: KEY_A, token: 'RELOAD_TOKEN_1' }), policies: { 'p.rego': BOT_POLICY }, env: ENV });
  const file = path.join(gw.dir, 'portcullis.yaml');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const statuses = new Map<number, number>();
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const status = await new Promise<number>((resolve) => {
        const u = new URL(gw.gateway.url);
        const req = http.get({ host: u.hostname, port: u.port, path: '/up/load', agent, headers: { authorization: `Bearer ${KEY_A}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(-1));
      });
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  try {
    const workers = Array.from({ length: 8 }, worker);
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 150));
      writeFileSync(file, yaml({ key: KEY_A, token: i % 2 ? 'RELOAD_TOKEN_1' : 'RELOAD_TOKEN_2' }));
      expect((await gw.gateway.reload()).result).toBe('loaded');
    }
    stop = true;
    await Promise.all(workers);
    expect([...statuses.keys()]).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(100);
    expect(gw.audit().filter((x) => x.type === 'config_loaded')).toHaveLength(6);
  } finally {
    stop = true;
    agent.destroy();
    await gw.close();
  }
});

test('watchConfig: a change of the file reloads it', async () => {
  const gw = await startTestGateway({ yaml: yaml({ key: KEY_A, token: 'RELOAD_TOKEN_1' }), policies: { 'p.rego': BOT_POLICY }, env: ENV });
  await gw.close();
  // Started again on the same directory with the watch on (startTestGateway does not set it).
  const file = path.join(gw.dir, 'portcullis.yaml');
  const load = () => loadConfig(file, { env: { ...process.env, ...ENV } });
  const gateway = await startGateway(load(), { logger: createLogger('silent'), watchConfig: true, loadConfig: load });
  try {
    writeFileSync(file, yaml({ key: KEY_B, token: 'RELOAD_TOKEN_2' }));
    const until = Date.now() + 8000;
    while ((await rawRequest(gateway.url, { path: '/up/x', headers: { authorization: `Bearer ${KEY_B}` } })).status !== 200) {
      if (Date.now() > until) throw new Error('the change was not reloaded');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await gateway.close();
  }
});

describe('the real CLI', () => {
  const base = scratchDir('portcullis-reload-');
  afterAll(() => killGatewaysAndRemove(base));

  test('SIGHUP reloads the configuration; a bad one is refused and the process keeps running', async () => {
    const dir = path.join(base, 'hup');
    mkdirSync(path.join(dir, 'policies'), { recursive: true });
    writeFileSync(path.join(dir, 'policies/p.rego'), BOT_POLICY);
    const file = path.join(dir, 'portcullis.yaml');
    writeFileSync(file, yaml({ key: KEY_A, token: 'RELOAD_TOKEN_1' }).replace('./audit', path.join(dir, 'audit')));
    const gp = await spawnGateway(file, { env: { ...process.env, ...ENV } });
    const ok = async (key: string) => (await rawRequest(gp.url, { path: '/up/x', headers: { authorization: `Bearer ${key}` } })).status;
    expect(await ok(KEY_A)).toBe(200);
    // Written in place of the old file; the watch may see it first, SIGHUP reloads it all the same.
    writeFileSync(file, yaml({ key: KEY_B, token: 'RELOAD_TOKEN_1' }).replace('./audit', path.join(dir, 'audit')));
    gp.child.kill('SIGHUP');
    const until = Date.now() + 8000;
    while ((await ok(KEY_B)) !== 200) {
      if (Date.now() > until) throw new Error('SIGHUP did not reload');
      await new Promise((r) => setTimeout(r, 100));
    }
    writeFileSync(file, 'routes: [ this is not yaml');
    gp.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await ok(KEY_B)).toBe(200);
    gp.child.kill('SIGTERM');
    await gp.exited;
    const records = trailRecords(path.join(dir, 'audit'));
    expect(records.some((r) => r.type === 'config_loaded')).toBe(true);
    expect(records.find((r) => r.type === 'config_rejected')).toMatchObject({ code: 'CONFIG_YAML_SYNTAX' });
  });
});

/**
 * G3 when the disk's sync fails: an LD_PRELOAD shim, compiled here with gcc, makes fdatasync and
 * fsync return EIO for the trail's segment files while a trigger file exists. Every call is then
 * refused with 503 and nothing is forwarded; readiness turns unready; the failed sync is never
 * retried on its descriptor, and the chain never writes into the failed segment again: once the
 * disk syncs again, it continues in a new segment whose segment_start names the last durable
 * record, and the trail verifies.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { segmentText } from '../helpers/audit';
import { oneRouteYaml, rawRequest, startUpstream, type Upstream } from '../helpers/harness';
import { callOnce, killGatewaysAndRemove, scratchDir, spawnGateway, trailRecords, verifyCli } from '../helpers/gateway-process';

const KEY = 'eio-agent-key';
const base = scratchDir('eio');
const auditDir = path.join(base, 'audit');
const configFile = path.join(base, 'portcullis.yaml');
const trigger = path.join(base, 'fail-sync');
const shim = path.join(base, 'eio-shim.so');
let upstream: Upstream;

const SHIM_C = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* EIO for descriptors whose path contains $EIO_MATCH, while the file $EIO_TRIGGER exists. */
static int failing(int fd) {
  const char *trigger = getenv("EIO_TRIGGER"), *match = getenv("EIO_MATCH");
  char link[64], target[4096];
  if (!trigger || !match || access(trigger, F_OK) != 0) return 0;
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = 0;
  return strstr(target, match) != NULL;
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (failing(fd)) { errno = EIO; return -1; }
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return real(fd);
}

int fsync(int fd) {
  static int (*real)(int);
  if (failing(fd)) { errno = EIO; return -1; }
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return real(fd);
}
`;

const GCC: string | null = (() => {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return 'gcc';
  } catch {
    return null;
  }
})();
const withGcc = GCC ? test : test.skip;
if (!GCC) console.warn('audit-eio: gcc is not installed, so the fdatasync EIO shim cannot be built: the EIO test is skipped');

beforeAll(async () => {
  upstream = await startUpstream();
  writeFileSync(configFile, `${oneRouteYaml({ upstream: upstream.url, agentKey: KEY, admin: true })}\nlog: { level: info }\n`);
  if (GCC) {
    writeFileSync(path.join(base, 'eio-shim.c'), SHIM_C);
    execFileSync(GCC, ['-shared', '-fPIC', '-O2', '-o', shim, path.join(base, 'eio-shim.c'), '-ldl']);
  }
});

afterAll(async () => {
  await upstream?.close();
  killGatewaysAndRemove(base);
});

const errorCode = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;

withGcc(
  'G3: fdatasync returning EIO: calls get 503 and nothing is forwarded, /readyz turns unready, the failed segment is never written again, and the chain continues in a new one',
  async () => {
    const gw = await spawnGateway(configFile, { env: { LD_PRELOAD: shim, EIO_TRIGGER: trigger, EIO_MATCH: `${auditDir}/audit-0` } });
    for (let i = 0; i < 3; i++) expect((await callOnce(gw.url, `/up/before-${i}`, KEY)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100)); // the lazy outcome records ride out
    const segment1 = path.join(auditDir, 'audit-00000001.jsonl');
    // Its records' bytes: the zeros the writer keeps after them (its preallocation) are not content.
    const durableBytes = Buffer.byteLength(segmentText(segment1));
    const lastDurable = trailRecords(auditDir).at(-1)!;

    writeFileSync(trigger, '');
    const during: { status: number | null; code: string }[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await callOnce(gw.url, `/up/during-${i}`, KEY);
      during.push({ status: r.status, code: errorCode(r.body) });
    }
    expect(during).toEqual(Array.from({ length: 8 }, () => ({ status: 503, code: 'PC_AUDIT_UNAVAILABLE' })));
    expect(upstream.received.filter((x) => x.url.startsWith('/during'))).toEqual([]);
    const ready = await rawRequest(gw.adminUrl!, { path: '/readyz' });
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('audit log not writable');
    expect(gw.stdout()).toContain('audit log write failed');
    expect(gw.stdout()).toMatch(/EIO|input\/output error/i);

    rmSync(trigger);
    const after = await callOnce(gw.url, '/up/after', KEY);
    expect(after.status).toBe(200);
    expect((await rawRequest(gw.adminUrl!, { path: '/readyz' })).status).toBe(200);
    process.kill(gw.pid, 'SIGTERM');
    expect((await gw.exited).code).toBe(0);

    // The failed segment holds exactly what was durable before the failure, and no zero tail; the
    // chain went on in segment 2, which names that last durable record.
    expect(statSync(segment1).size).toBe(durableBytes);
    expect(readFileSync(segment1, 'utf8').trimEnd().split('\n').at(-1)).toContain(`"seq":${lastDurable.seq},`);
    const segment2 = path.join(auditDir, 'audit-00000002.jsonl');
    expect(existsSync(segment2)).toBe(true);
    const opened = JSON.parse(readFileSync(segment2, 'utf8').split('\n')[0]) as Record<string, any>;
    expect(opened).toMatchObject({ type: 'segment_start', seq: lastDurable.seq + 1, previous: { file: 'audit-00000001.jsonl', last_seq: lastDurable.seq } });
    const records = trailRecords(auditDir);
    expect(records.find((r) => r.type === 'audit_recovered')).toMatchObject({ refused_records: expect.any(Number) });
    expect(records.filter((r) => r.type === 'decision' && String(r.path).includes('during'))).toEqual([]);
    const v = await verifyCli(auditDir);
    expect(v.report.problems).toEqual([]);
    expect(v.code).toBe(0);
  },
  60_000,
);

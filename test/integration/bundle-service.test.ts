/**
 * The bundle service client (src/policy/bundle-service.ts) against real HTTP and HTTPS servers
 * on port 0: ETags and If-None-Match (the server answers 304 only when the header names its
 * ETag), jittered polls, the bearer token, mTLS with a CA and certificates made here with the
 * openssl CLI, the persisted last good bundle and its fallback, and the limits (size,
 * encodings, redirects, timeouts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { gzipSync } from 'node:zlib';
import { randomBytes, createHash } from 'node:crypto';
import {
  BundleService,
  BundleServiceError,
  type BundleErrorMeta,
  type BundleMeta,
  type BundleServiceOptions,
  type PollResult,
} from '../../src/policy/bundle-service';
import { Secret } from '../../src/secret';

const root = mkdtempSync(path.join(os.tmpdir(), 'portcullis-bundle-svc-'));
let dirNo = 0;
const freshDir = () => path.join(root, `persist-${dirNo++}`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** Stand-ins for bundles: the client never unpacks them. */
const bundle = (label: string) => gzipSync(Buffer.from(`bundle ${label} ${randomBytes(8).toString('hex')}`));

afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Seen {
  readonly headers: http.IncomingHttpHeaders;
  readonly at: number;
}

/** A bundle server: serves `current` with its ETag; 304 only when If-None-Match names it. */
interface BundleServer {
  url: string;
  current: { bytes: Buffer; etag: string | null };
  seen: Seen[];
  notModified: number;
  /** Replaces the normal answer (return true when handled). */
  override: ((req: http.IncomingMessage, res: http.ServerResponse) => boolean) | null;
  requireToken: string | null;
  close(): Promise<void>;
}

function handler(s: BundleServer) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    s.seen.push({ headers: req.headers, at: Date.now() });
    if (s.requireToken !== null && req.headers.authorization !== `Bearer ${s.requireToken}`) {
      // Echoes what it got, as a careless server might: the client must not repeat it.
      res.writeHead(401, { 'content-type': 'text/plain' }).end(`bad credentials: ${req.headers.authorization ?? 'none'}`);
      return;
    }
    if (s.override?.(req, res)) return;
    const { bytes, etag } = s.current;
    if (etag !== null && req.headers['if-none-match'] === etag) {
      s.notModified++;
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': bytes.length, ...(etag !== null ? { etag } : {}) }).end(bytes);
  };
}

async function listen(server: http.Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function startServer(options: { tls?: https.ServerOptions } = {}): Promise<BundleServer> {
  const s: BundleServer = {
    url: '',
    current: { bytes: bundle('v1'), etag: '"v1"' },
    seen: [],
    notModified: 0,
    override: null,
    requireToken: null,
    close: async () => undefined,
  };
  const server = options.tls ? https.createServer(options.tls, handler(s)) : http.createServer(handler(s));
  const port = await listen(server);
  s.url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/bundles/authz.tar.gz`;
  s.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return s;
}

/** A port with nothing listening (bound, then released). */
async function deadUrl(): Promise<string> {
  const server = http.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/bundles/authz.tar.gz`;
}

/** What the events saw. */
interface Recorder {
  bundles: { bytes: Buffer; meta: BundleMeta }[];
  errors: { error: BundleServiceError; meta: BundleErrorMeta }[];
  polls: { result: PollResult; status: number | null; nextDelayMs: number }[];
  /** onError throws after recording (a faulty listener). */
  onErrorThrows: boolean;
  /** Decides each hand-over: resolve (accept) or throw (refuse). */
  accept: (bytes: Buffer, meta: BundleMeta) => Promise<void>;
  waitPolls(n: number, timeoutMs?: number): Promise<void>;
}

function recorder(): Recorder {
  const r: Recorder = {
    bundles: [],
    errors: [],
    polls: [],
    onErrorThrows: false,
    accept: async () => undefined,
    async waitPolls(n, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (r.polls.length < n) {
        if (Date.now() > until) throw new Error(`only ${r.polls.length} polls of ${n}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
  };
  return r;
}

const services: BundleService[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.close()));
});

function service(url: string, rec: Recorder, options: Partial<BundleServiceOptions> = {}): BundleService {
  const svc = new BundleService(
    {
      url: new URL(url),
      minDelayS: 0.05,
      maxDelayS: 0.1,
      token: null,
      tls: null,
      persistDir: freshDir(),
      timeoutMs: 2000,
      ...options,
    },
    {
      onBundle: async (bytes, meta) => {
        rec.bundles.push({ bytes, meta });
        await rec.accept(bytes, meta);
      },
      onError: (error, meta) => {
        rec.errors.push({ error, meta });
        if (rec.onErrorThrows) throw new Error('a faulty listener');
      },
      onPolled: (poll) => {
        rec.polls.push(poll);
      },
    },
  );
  services.push(svc);
  return svc;
}

function persistedFiles(dir: string): { bytes: Buffer; meta: { etag: string | null; sha256: string; size: number } } {
  return { bytes: readFileSync(path.join(dir, 'bundle.tar.gz')), meta: JSON.parse(readFileSync(path.join(dir, 'bundle.json'), 'utf8')) };
}

describe('fetching, ETags and persistence', () => {
  let server: BundleServer;
  beforeEach(async () => {
    server = await startServer();
  });
  afterEach(() => server.close());

  test('initial(): one GET without If-None-Match, handed to onBundle, persisted with its ETag and digest', async () => {
    const rec = recorder();
    const dir = freshDir();
    const svc = service(server.url, rec, { persistDir: dir });
    const first = await svc.initial();
    expect(first).toMatchObject({ etag: '"v1"', source: 'server', sha256: sha(server.current.bytes) });
    expect(first.bytes.equals(server.current.bytes)).toBe(true);
    expect(rec.bundles).toHaveLength(1);
    expect(rec.bundles[0].meta).toEqual({ etag: '"v1"', sha256: sha(server.current.bytes), source: 'server' });
    expect(server.seen).toHaveLength(1);
    expect(server.seen[0].headers['if-none-match']).toBeUndefined();
    expect(server.seen[0].headers['accept-encoding']).toBe('identity');
    expect(server.seen[0].headers.prefer).toBe('modes=snapshot');
    const files = persistedFiles(dir);
    expect(files.bytes.equals(server.current.bytes)).toBe(true);
    expect(files.meta).toMatchObject({ etag: '"v1"', sha256: sha(server.current.bytes), size: server.current.bytes.length });
    expect(svc.etag).toBe('"v1"');
    // Only the two files, readable by the gateway alone; no temporary file left behind.
    expect(readdirSync(dir).sort()).toEqual(['bundle.json', 'bundle.tar.gz']);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, 'bundle.tar.gz')).mode & 0o777).toBe(0o600);
  });

  test('polling sends If-None-Match with the ETag in force; the server answers 304 and nothing is handed over', async () => {
    const rec = recorder();
    const svc = service(server.url, rec);
    await svc.initial();
    svc.start();
    await rec.waitPolls(3);
    expect(rec.polls.slice(0, 3).map((p) => [p.result, p.status])).toEqual([
      ['not_modified', 304],
      ['not_modified', 304],
      ['not_modified', 304],
    ]);
    expect(server.seen.slice(1, 4).map((s) => s.headers['if-none-match'])).toEqual(['"v1"', '"v1"', '"v1"']);
    expect(server.notModified).toBeGreaterThanOrEqual(3);
    expect(rec.bundles).toHaveLength(1);
    expect(rec.errors).toEqual([]);
  });

  test('a new ETag on the server: handed to onBundle, persisted, and its ETag sent from then on', async () => {
    const rec = recorder();
    const dir = freshDir();
    const svc = service(server.url, rec, { persistDir: dir });
    await svc.initial();
    svc.start();
    await rec.waitPolls(1);
    const v2 = bundle('v2');
    server.current = { bytes: v2, etag: '"v2"' };
    const before = rec.polls.length;
    await rec.waitPolls(before + 3);
    expect(rec.bundles.map((b) => b.meta.etag)).toEqual(['"v1"', '"v2"']);
    expect(rec.bundles[1].bytes.equals(v2)).toBe(true);
    expect(rec.polls.map((p) => p.result)).toContain('accepted');
    expect(server.seen.at(-1)!.headers['if-none-match']).toBe('"v2"');
    expect(svc.etag).toBe('"v2"');
    const files = persistedFiles(dir);
    expect(files.bytes.equals(v2)).toBe(true);
    expect(files.meta).toMatchObject({ etag: '"v2"', sha256: sha(v2) });
  });

  test('onBundle rejecting: nothing persisted, the ETag in force stays, and the refused bundle is not handed over again', async () => {
    const rec = recorder();
    const dir = freshDir();
    const svc = service(server.url, rec, { persistDir: dir });
    const v1 = server.current.bytes;
    await svc.initial();
    rec.accept = async (_bytes, meta) => {
      if (meta.etag === '"bad"') throw new Error('bad_signature: the signature does not verify');
    };
    server.current = { bytes: bundle('bad'), etag: '"bad"' };
    svc.start();
    await rec.waitPolls(4);
    expect(rec.bundles.map((b) => b.meta.etag)).toEqual(['"v1"', '"bad"']);
    expect(rec.polls.slice(0, 4).map((p) => p.result)).toEqual(['refused', 'refused_before', 'refused_before', 'refused_before']);
    expect(rec.errors).toHaveLength(1);
    expect(rec.errors[0].error.code).toBe('refused');
    expect(rec.errors[0].error.message).toMatch(/ETag "bad".*was refused: bad_signature/);
    expect(rec.errors[0].meta).toMatchObject({ during: 'poll', url: server.url });
    // Every poll still names the bundle in force, so a fixed bundle or a revert is seen.
    expect(server.seen.slice(1).every((s) => s.headers['if-none-match'] === '"v1"')).toBe(true);
    expect(svc.etag).toBe('"v1"');
    const files = persistedFiles(dir);
    expect(files.bytes.equals(v1)).toBe(true);
    expect(files.meta.etag).toBe('"v1"');
    // A new bundle after the refused one is handed over and accepted.
    const v3 = bundle('v3');
    server.current = { bytes: v3, etag: '"v3"' };
    const n = rec.polls.length;
    await rec.waitPolls(n + 2);
    expect(rec.bundles.map((b) => b.meta.etag)).toEqual(['"v1"', '"bad"', '"v3"']);
    expect(persistedFiles(dir).bytes.equals(v3)).toBe(true);
  });

  test('a server that ignores If-None-Match and sends the bytes in force again: nothing handed over', async () => {
    const rec = recorder();
    const svc = service(server.url, rec);
    await svc.initial();
    server.override = (_req, res) => {
      res.writeHead(200, { etag: '"v1"' }).end(server.current.bytes);
      return true;
    };
    svc.start();
    await rec.waitPolls(2);
    expect(rec.polls.slice(0, 2).map((p) => p.result)).toEqual(['unchanged', 'unchanged']);
    expect(rec.bundles).toHaveLength(1);
  });

  test('a gzip transport encoding is decoded; any other encoding is refused clearly', async () => {
    const rec = recorder();
    const v1 = server.current.bytes;
    server.override = (_req, res) => {
      res.writeHead(200, { etag: '"v1"', 'content-encoding': 'gzip' }).end(gzipSync(v1));
      return true;
    };
    const first = await service(server.url, rec).initial();
    expect(first.bytes.equals(v1)).toBe(true);
    server.override = (_req, res) => {
      res.writeHead(200, { etag: '"v1"', 'content-encoding': 'br' }).end(v1);
      return true;
    };
    const err = await service(server.url, recorder())
      .initial()
      .catch((e) => e);
    expect(err).toBeInstanceOf(BundleServiceError);
    expect(err.code).toBe('no_bundle');
    expect(err.message).toMatch(/Content-Encoding br; only identity or gzip is accepted/);
  });

  test('redirects are not followed: a 302 is a failure naming where it pointed, and the other server sees nothing', async () => {
    const other = await startServer();
    try {
      server.override = (_req, res) => {
        res.writeHead(302, { location: `${other.url}?X-Amz-Signature=abc` }).end();
        return true;
      };
      const err = await service(server.url, recorder(), { token: new Secret('redirect-token-123', 'test') })
        .initial()
        .catch((e) => e);
      expect(err.code).toBe('no_bundle');
      expect((err.cause as BundleServiceError).code).toBe('redirect');
      expect(err.message).toContain(`answered 302 to ${other.url}?…; redirects are not followed`);
      expect(err.message).not.toContain('abc');
      expect(other.seen).toEqual([]);
    } finally {
      await other.close();
    }
  });

  test('an oversized body is refused: by Content-Length, while reading a chunked body, and after gzip decoding', async () => {
    const big = randomBytes(4096);
    server.current = { bytes: big, etag: '"big"' };
    const byLength = await service(server.url, recorder(), { maxBytes: 1024 })
      .initial()
      .catch((e) => e);
    expect(byLength.cause.code).toBe('too_large');
    expect(byLength.message).toMatch(/is 4096 bytes, more than the 1024 allowed/);

    server.override = (_req, res) => {
      res.writeHead(200, { etag: '"big"' });
      res.write(big.subarray(0, 1000));
      res.end(big.subarray(1000));
      return true;
    };
    const chunked = await service(server.url, recorder(), { maxBytes: 1024 })
      .initial()
      .catch((e) => e);
    expect(chunked.cause.code).toBe('too_large');
    expect(chunked.message).toMatch(/larger than the 1024 bytes allowed/);

    server.override = (_req, res) => {
      res.writeHead(200, { etag: '"bomb"', 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(1 << 20)));
      return true;
    };
    const bomb = await service(server.url, recorder(), { maxBytes: 64 * 1024 })
      .initial()
      .catch((e) => e);
    expect(bomb.cause.code).toBe('too_large');
    expect(bomb.message).toMatch(/decodes \(Content-Encoding gzip\) to more than/);

    // Within the limit the same body is fine.
    server.override = null;
    const ok = await service(server.url, recorder(), { maxBytes: 4096 }).initial();
    expect(ok.bytes.equals(big)).toBe(true);
  });
});

describe('bearer token', () => {
  const TOKEN = 'bundle-service-token-0123456789';
  let server: BundleServer;
  beforeAll(async () => {
    server = await startServer();
    server.requireToken = TOKEN;
  });
  afterAll(() => server.close());

  test('the server requires the token: without it 401, with it the bundle', async () => {
    const without = await service(server.url, recorder())
      .initial()
      .catch((e) => e);
    expect(without.code).toBe('no_bundle');
    expect(without.message).toContain(`${server.url} answered 401`);
    const ok = await service(server.url, recorder(), { token: new Secret(TOKEN, 'env BUNDLE_TOKEN') }).initial();
    expect(ok.etag).toBe('"v1"');
    expect(server.seen.at(-1)!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  test('the token is never in an error message, an error event or the inspected client', async () => {
    const wrong = 'wrong-token-abcdef0123456789';
    const rec = recorder();
    const svc = service(server.url, rec, { token: new Secret(wrong, 'env BUNDLE_TOKEN') });
    const err = await svc.initial().catch((e) => e);
    expect(server.seen.at(-1)!.headers.authorization).toBe(`Bearer ${wrong}`);
    svc.start();
    await rec.waitPolls(1);
    const shown = [
      err.message,
      inspect(err, { depth: 5 }),
      inspect(svc, { depth: 5 }),
      ...rec.errors.map((e) => `${e.error.message} ${inspect(e, { depth: 5 })}`),
    ];
    for (const text of shown) expect(text).not.toContain(wrong);
    expect(rec.errors[0].error.message).toContain('answered 401');
  });

  test('a token is refused over plain http to a host that is not loopback, and a URL with userinfo is refused', () => {
    const events = { onBundle: async () => undefined, onError: () => undefined };
    const base = { minDelayS: 1, maxDelayS: 2, tls: null, persistDir: freshDir(), timeoutMs: 1000 };
    expect(() => new BundleService({ ...base, url: new URL('http://bundles.example/b.tar.gz'), token: new Secret('t', 'x') }, events)).toThrow(
      /a bearer token is sent only over https/,
    );
    expect(() => new BundleService({ ...base, url: new URL('https://u:p@bundles.example/b.tar.gz'), token: null }, events)).toThrow(
      /must not embed credentials/,
    );
    expect(() => new BundleService({ ...base, url: new URL('https://bundles.example/b.tar.gz'), token: null, minDelayS: 3 }, events)).toThrow(
      /0 < minDelayS <= maxDelayS/,
    );
    expect(() => new BundleService({ ...base, url: new URL('https://bundles.example/b.tar.gz'), token: new Secret('a b', 'x') }, events)).toThrow(
      /from x is not a valid bearer token/,
    );
  });
});

describe('fallback to the persisted bundle', () => {
  /** A persist directory holding a bundle put in force by an earlier run. */
  async function persistedBy(): Promise<{ dir: string; bytes: Buffer }> {
    const server = await startServer();
    const dir = freshDir();
    try {
      await service(server.url, recorder(), { persistDir: dir }).initial();
      return { dir, bytes: server.current.bytes };
    } finally {
      await server.close();
    }
  }

  test('the server down at start: the persisted bundle is handed over (source persisted) and the cause reported', async () => {
    const { dir, bytes } = await persistedBy();
    const rec = recorder();
    const url = await deadUrl();
    const first = await service(url, rec, { persistDir: dir }).initial();
    expect(first).toMatchObject({ source: 'persisted', etag: '"v1"', sha256: sha(bytes) });
    expect(first.bytes.equals(bytes)).toBe(true);
    expect(rec.bundles.map((b) => b.meta.source)).toEqual(['persisted']);
    expect(rec.errors).toHaveLength(1);
    expect(rec.errors[0].meta).toMatchObject({ during: 'initial', url });
    expect(rec.errors[0].error.message).toMatch(/could not be reached \(ECONNREFUSED\)/);
  });

  test('the server answering 500 or too slow at start: the persisted bundle', async () => {
    const { dir } = await persistedBy();
    const server = await startServer();
    try {
      server.override = (_req, res) => {
        res.writeHead(500).end('boom');
        return true;
      };
      const rec = recorder();
      const svc = service(server.url, rec, { persistDir: dir });
      expect((await svc.initial()).source).toBe('persisted');
      expect(rec.errors[0].error).toMatchObject({ code: 'http_status', message: `${server.url} answered 500` });
      // The server recovers: the polls name the persisted bundle's ETag, so an unchanged bundle is a 304.
      server.override = null;
      svc.start();
      await rec.waitPolls(1);
      expect(server.seen.at(-1)!.headers['if-none-match']).toBe('"v1"');
      expect(rec.polls[0]).toMatchObject({ result: 'not_modified', status: 304 });
      await svc.close();

      server.override = () => true; // never answers
      const slow = recorder();
      const first = await service(server.url, slow, { persistDir: dir, timeoutMs: 300 }).initial();
      expect(first.source).toBe('persisted');
      expect(slow.errors[0].error).toMatchObject({ code: 'timeout', message: `${server.url} did not answer within 300 ms` });
    } finally {
      await server.close();
    }
  });

  test('the server down and nothing persisted: a clear error naming the URL and the cause', async () => {
    const url = await deadUrl();
    const dir = freshDir();
    const err = await service(url, recorder(), { persistDir: dir })
      .initial()
      .catch((e) => e);
    expect(err).toBeInstanceOf(BundleServiceError);
    expect(err.code).toBe('no_bundle');
    expect(err.message).toBe(`no policy bundle: ${url} could not be reached (ECONNREFUSED); and no bundle is persisted in ${dir}`);
  });

  test('a torn persisted bundle (cut short after its metadata was written) is ignored, and the error says so', async () => {
    const { dir } = await persistedBy();
    truncateSync(path.join(dir, 'bundle.tar.gz'), 10);
    const err = await service(await deadUrl(), recorder(), { persistDir: dir })
      .initial()
      .catch((e) => e);
    expect(err.code).toBe('no_bundle');
    expect(err.message).toMatch(
      /ECONNREFUSED.*bundle\.tar\.gz \(10 bytes, sha256 [0-9a-f]{64}\) is not the bundle .*bundle\.json names.*a torn or partial write; it is ignored/,
    );
    writeFileSync(path.join(dir, 'bundle.json'), '{"version":1,"sha25');
    const err2 = await service(await deadUrl(), recorder(), { persistDir: dir })
      .initial()
      .catch((e) => e);
    expect(err2.message).toMatch(/bundle\.json is not JSON \(a torn write\?\); the persisted bundle is ignored/);
  });

  test('the server bundle refused at start: the persisted bundle is tried next; both refused: no_bundle', async () => {
    const { dir, bytes } = await persistedBy();
    const server = await startServer();
    try {
      const rec = recorder();
      rec.accept = async (_b, meta) => {
        if (meta.source === 'server') throw new Error('rollback: serial 3 is below 5');
      };
      const first = await service(server.url, rec, { persistDir: dir }).initial();
      expect(first.source).toBe('persisted');
      expect(first.bytes.equals(bytes)).toBe(true);
      expect(rec.errors[0].error.code).toBe('refused');

      const none = recorder();
      none.accept = async () => {
        throw new Error('unsigned');
      };
      const err = await service(server.url, none, { persistDir: dir })
        .initial()
        .catch((e) => e);
      expect(err.code).toBe('no_bundle');
      expect(err.message).toMatch(/was refused: unsigned; and the persisted bundle in .* was refused: unsigned/);
    } finally {
      await server.close();
    }
  });
});

describe('the poll loop', () => {
  test('jitter: each delay is minDelay + random() × (maxDelay − minDelay), and the server sees polls no sooner than minDelay apart', async () => {
    const server = await startServer();
    try {
      const rs = [0, 0.5, 0.999, 0.25];
      let i = 0;
      const rec = recorder();
      const svc = service(server.url, rec, { random: () => rs[i++ % rs.length] });
      await svc.initial();
      svc.start(); // the first delay uses rs[0]
      await rec.waitPolls(3);
      expect(rec.polls.slice(0, 3).map((p) => p.nextDelayMs)).toEqual([50 + 0.5 * 50, 50 + 0.999 * 50, 50 + 0.25 * 50]);
      const gaps = server.seen.slice(1, 4).map((s, k) => s.at - server.seen[k].at);
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(48);
    } finally {
      await server.close();
    }
  });

  test('the server going down while polling: errors with the URL reach onError, the delay backs off within [min, max], the loop recovers', async () => {
    const server = await startServer();
    try {
      const rec = recorder();
      const svc = service(server.url, rec, { random: () => 0.999 });
      await svc.initial();
      let down = true;
      server.override = (req, res) => {
        if (!down) return false;
        req.socket.destroy();
        res.destroy();
        return true;
      };
      // An onError that throws does not stop the loop.
      rec.onErrorThrows = true;
      svc.start();
      await rec.waitPolls(4);
      const failed = rec.polls.slice(0, 4);
      expect(failed.every((p) => p.result === 'failed' && p.status === null)).toBe(true);
      // Doubling from min (50 ms): caps 100 (= max) from the first failure on; always in [50, 100].
      for (const p of failed) {
        expect(p.nextDelayMs).toBeGreaterThanOrEqual(50);
        expect(p.nextDelayMs).toBeLessThanOrEqual(100);
      }
      const original = rec.errors;
      expect(original.length).toBeGreaterThanOrEqual(4);
      expect(original[0].meta).toMatchObject({ during: 'poll', url: server.url });
      expect(original[0].meta.retryInMs).toBe(failed[0].nextDelayMs);
      expect(original[0].error.code).toBe('unreachable');
      expect(original[0].error.message).toContain(server.url);
      down = false;
      const n = rec.polls.length;
      await rec.waitPolls(n + 2);
      expect(rec.polls.at(-1)!.result).toBe('not_modified');
    } finally {
      await server.close();
    }
  });

  test('backoff: with a long max delay the delays after failures double from min', async () => {
    const url = await deadUrl();
    const rec = recorder();
    let calls = 0;
    // The first delay (no failure yet) at min, the ones after failures at the top of their range.
    const svc = service(url, rec, { minDelayS: 0.02, maxDelayS: 10, random: () => (calls++ === 0 ? 0 : 0.999999) });
    svc.start();
    await rec.waitPolls(3);
    const caps = rec.polls.slice(0, 3).map((p) => Math.round(p.nextDelayMs));
    expect(caps).toEqual([40, 80, 160]);
  });

  test('close() aborts a request in flight and stops polling; nothing is reported after it', async () => {
    const server = await startServer();
    try {
      const rec = recorder();
      const svc = service(server.url, rec, { timeoutMs: 20_000 });
      await svc.initial();
      let held = 0;
      server.override = () => {
        held++;
        return true; // holds the request
      };
      svc.start();
      while (held === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      const t0 = Date.now();
      await svc.close();
      expect(Date.now() - t0).toBeLessThan(1000);
      const seen = server.seen.length;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(server.seen.length).toBe(seen);
      expect(rec.errors).toEqual([]);
      expect(rec.polls).toEqual([]);
      await expect(svc.initial()).rejects.toMatchObject({ code: 'closed' });
    } finally {
      await server.close();
    }
  });
});

describe('mTLS and a private CA', () => {
  const dir = path.join(root, 'pki');
  const at = (name: string) => path.join(dir, name);
  function openssl(...args: string[]): void {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }
  /** A self-signed CA, then certificates it signs: `<name>.pem`, `<name>.key`. */
  function makeCa(name: string): void {
    openssl(
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
      '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ); // biome-ignore format: argument list
  }
  let serialNo = 0x2000;
  function makeCert(name: string, ca: string, ext: string): void {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(at(`${name}.ext`), ext);
    openssl(
      'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(serialNo++), '-days', '2',
      '-out', `${name}.pem`, '-extfile', `${name}.ext`,
    ); // biome-ignore format: argument list
  }
  const read = (name: string) => readFileSync(at(name));
  let server: BundleServer;

  beforeAll(async () => {
    execFileSync('mkdir', ['-p', dir]);
    makeCa('ca');
    makeCa('other-ca');
    makeCert('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    makeCert('gateway', 'ca', 'extendedKeyUsage=clientAuth\n');
    makeCert('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
    server = await startServer({
      tls: { cert: read('server.pem'), key: read('server.key'), ca: read('ca.pem'), requestCert: true, rejectUnauthorized: true },
    });
  }, 30_000);
  afterAll(() => server?.close());

  test('with the client certificate and the private CA: the bundle; If-None-Match and 304 over TLS too', async () => {
    const rec = recorder();
    const svc = service(server.url, rec, {
      tls: { ca: read('ca.pem'), cert: read('gateway.pem'), key: new Secret(read('gateway.key').toString(), 'file gateway.key') },
    });
    const first = await svc.initial();
    expect(first.etag).toBe('"v1"');
    svc.start();
    await rec.waitPolls(1);
    expect(rec.polls[0]).toMatchObject({ result: 'not_modified', status: 304 });
  });

  test('without a client certificate, or with one of another CA: refused by the server (unreachable, no bundle)', async () => {
    const before = server.seen.length;
    const none = await service(server.url, recorder(), { tls: { ca: read('ca.pem'), cert: null, key: null } })
      .initial()
      .catch((e) => e);
    expect(none.code).toBe('no_bundle');
    expect(none.cause.code).toBe('unreachable');
    const stranger = await service(server.url, recorder(), { tls: { ca: read('ca.pem'), cert: read('stranger.pem'), key: read('stranger.key') } })
      .initial()
      .catch((e) => e);
    expect(stranger.cause.code).toBe('unreachable');
    expect(server.seen.length).toBe(before);
  });

  test("without the private CA the server's certificate is not trusted; a CA file that does not parse is refused when built", async () => {
    const err = await service(server.url, recorder(), { tls: { ca: null, cert: read('gateway.pem'), key: read('gateway.key') } })
      .initial()
      .catch((e) => e);
    expect(err.cause.code).toBe('unreachable');
    expect(err.message).toMatch(/could not be reached \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/);
    expect(() =>
      service(server.url, recorder(), {
        tls: { ca: Buffer.from('-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n'), cert: null, key: null },
      }),
    ).toThrow(/the TLS files are not usable/);
    expect(() => service(server.url, recorder(), { tls: { ca: null, cert: read('gateway.pem'), key: null } })).toThrow(/needs its key/);
  });
});

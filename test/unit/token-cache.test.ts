/** The OAuth token cache's pure logic (src/credential-injector/token-cache.ts): single flight, refresh ahead, a failed refresh, eviction. */
import { FAIL_FAST_MS, RETRY_AFTER_MS, refreshAt, TokenCache } from '../../src/credential-injector/token-cache';

interface Entry {
  readonly id: number;
  readonly expiresAtMs: number;
  readonly refreshAtMs: number;
}

const entry = (id: number, expiresInMs: number, refreshInMs = expiresInMs): Entry => ({
  id,
  expiresAtMs: Date.now() + expiresInMs,
  refreshAtMs: Date.now() + refreshInMs,
});

test('G24: refresh time is refresh_before_s before expiry, but never earlier than half the lifetime', () => {
  expect(refreshAt(0, 600_000, 60)).toBe(540_000);
  expect(refreshAt(0, 10_000, 60)).toBe(5_000);
  expect(refreshAt(0, 10_000, 0)).toBe(10_000);
});

test('G24: one fetch per key is in flight however many callers wait; other keys fetch on their own', async () => {
  const cache = new TokenCache<Entry>();
  let fetches = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const fetch = () => {
    const id = ++fetches;
    return gate.then(() => entry(id, 60_000));
  };
  const waiting = Array.from({ length: 100 }, () => cache.fetch('a', fetch));
  const other = cache.fetch('b', fetch);
  release();
  const got = await Promise.all(waiting);
  expect(fetches).toBe(2);
  expect(new Set(got).size).toBe(1);
  expect((await other).id).not.toBe(got[0].id);
  expect(cache.usable('a', Date.now())).toBe(got[0]);
});

test('G24: an entry past its refresh time is not usable; a failed refresh keeps a still-valid one for RETRY_AFTER_MS, an expired one never', async () => {
  const cache = new TokenCache<Entry>();
  const old = await cache.fetch('a', async () => entry(1, 60_000, -1));
  const now = Date.now();
  expect(cache.usable('a', now)).toBeNull();
  expect(await cache.fetch('a', async () => Promise.reject(new Error('endpoint down')))).toBe(old);
  // The retry window runs from the failure, which came at or before this (a loaded machine may
  // take more than a millisecond between `now` and it).
  const failedBy = Date.now();
  expect(cache.usable('a', now)).toBe(old);
  expect(cache.usable('a', failedBy + RETRY_AFTER_MS + 1)).toBeNull();
  expect(cache.usable('a', old.expiresAtMs)).toBeNull();

  await cache.fetch('b', async () => entry(2, -1, -1));
  expect(cache.usable('b', Date.now())).toBeNull();
  await expect(cache.fetch('b', async () => Promise.reject(new Error('endpoint down')))).rejects.toThrow('endpoint down');
});

test('G24: expired entries are dropped when a token is stored, and soonestExpiry names the earliest valid one', async () => {
  const cache = new TokenCache<Entry>();
  await cache.fetch('gone', async () => entry(1, -1));
  const soon = await cache.fetch('soon', async () => entry(2, 10_000));
  await cache.fetch('late', async () => entry(3, 20_000));
  expect(cache.soonestExpiry(Date.now())).toBe(soon.expiresAtMs);
  expect(cache.usable('gone', Date.now() - 10_000)).toBeNull();
});

test('G24: with nothing cached, a failed fetch is answered again at once for FAIL_FAST_MS, then the endpoint is asked again', async () => {
  const cache = new TokenCache<Entry>();
  let fetches = 0;
  const failing = () => {
    fetches++;
    return Promise.reject(new Error('endpoint down'));
  };
  await expect(cache.fetch('a', failing)).rejects.toThrow('endpoint down');
  await expect(cache.fetch('a', failing)).rejects.toThrow('endpoint down');
  await expect(cache.fetch('a', failing)).rejects.toThrow('endpoint down');
  expect(fetches).toBe(1);
  const now = Date.now();
  const clock = jest.spyOn(Date, 'now').mockReturnValue(now + FAIL_FAST_MS + 1);
  try {
    expect((await cache.fetch('a', () => Promise.resolve(entry(7, 60_000)))).id).toBe(7);
    await expect(cache.fetch('b', failing)).rejects.toThrow('endpoint down');
    expect(fetches).toBe(2);
  } finally {
    clock.mockRestore();
  }
});

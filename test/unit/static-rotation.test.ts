/**
 * The static provider over a real, rotating secret file (src/credential-injector/static.ts):
 * the attachment is one prebuilt object per value (the hot path allocates nothing), a rotation
 * swaps it and reports both fingerprints, the masker covers old and new during the grace
 * period, and a bad file is a counted failure that keeps the value. Guarantee G26.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { StaticCredential } from '../../src/credential-injector/static';
import { staticProvider } from '../../src/credential-injector/static';
import { brokerContext, type RotationFacts } from '../../src/credential-injector/broker-context';
import type { Attachment, CredentialProvider } from '../../src/credential-injector/provider';
import { Secret } from '../../src/secret';

const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-static-rotation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A broker whose log and rotation records resolve promises the test awaits. */
function testBroker() {
  const errors: string[] = [];
  const rotations: RotationFacts[] = [];
  let wake: () => void = () => undefined;
  const next = () => new Promise<void>((r) => (wake = r));
  const broker = brokerContext(
    {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error(_o, msg) {
        errors.push(msg);
        wake();
      },
    },
    (facts) => {
      rotations.push(facts);
      wake();
    },
  );
  broker.setSigner({ sign: (t) => `test-signature:${t}` });
  return { broker, errors, rotations, next };
}

const call = { identity: null, subjectToken: null, scopes: null } as const;

/** A static secret's attachment is never a promise. */
function obtain(p: CredentialProvider): Attachment {
  const a = p.obtain(call);
  if (a instanceof Promise) throw new Error('a static secret was fetched');
  return a;
}

function credential(file: string, graceS: number): StaticCredential {
  return { name: 'api', type: 'bearer', token: new Secret('old-value-1', `file ${file}`), rotation: { file, graceS, pollMs: 60_000 } };
}

const masked = (masker: { maskBuffer(b: Buffer): boolean }, text: string) => {
  const b = Buffer.from(text);
  masker.maskBuffer(b);
  return b.toString();
};

test('G26: one attachment per value; a rotation swaps it, reports both fingerprints, and masks old and new during the grace', async () => {
  const file = path.join(dir, 'a-token');
  writeFileSync(file, 'old-value-1\n');
  const t = testBroker();
  const p = staticProvider(credential(file, 300), t.broker);
  try {
    const first = obtain(p);
    expect(obtain(p)).toBe(first); // prebuilt: the same object every call
    const rotated = t.next();
    writeFileSync(file, 'new-value-2\n');
    await rotated;
    const second = obtain(p);
    expect(second).not.toBe(first);
    expect(obtain(p)).toBe(second);
    expect(t.rotations).toEqual([
      { credential: 'api', credential_type: 'bearer', fingerprint: second.fingerprint, previous_fingerprint: first.fingerprint, grace_s: 300 },
    ]);
    const headers: Record<string, string> = {};
    void second.apply({ method: 'GET', origin: 'http://x', path: '/', headers, body: Buffer.alloc(0) });
    expect(headers.authorization).toBe('Bearer new-value-2');
    expect(masked(second.secrets.masker, 'a old-value-1 b new-value-2')).toBe('a *********** b ***********');
    expect(masked(p.secrets().masker, 'old-value-1')).toBe('***********');
    expect(p.health()).toMatchObject({ ok: true, fetches: 2, failures: 0, lastError: null });
  } finally {
    p.close?.();
  }
});

test('G26: with no grace the old value is not masked after the rotation', async () => {
  const file = path.join(dir, 'b-token');
  writeFileSync(file, 'old-value-1');
  const t = testBroker();
  const p = staticProvider(credential(file, 0), t.broker);
  try {
    const rotated = t.next();
    writeFileSync(file, 'new-value-2');
    await rotated;
    expect(masked(obtain(p).secrets.masker, 'old-value-1 new-value-2')).toBe('old-value-1 ***********');
  } finally {
    p.close?.();
  }
});

test('G26: an empty, multi-line or removed file is a counted failure that keeps the value in use', async () => {
  const file = path.join(dir, 'c-token');
  writeFileSync(file, 'old-value-1');
  const t = testBroker();
  const p = staticProvider(credential(file, 300), t.broker);
  try {
    const before = obtain(p);
    for (const [change, failures] of [
      [() => writeFileSync(file, ''), 1],
      [() => writeFileSync(file, 'line-1\nline-2\n'), 2],
      [() => rmSync(file), 3],
    ] as const) {
      const logged = t.next();
      change();
      await logged;
      expect(obtain(p)).toBe(before);
      expect(p.health()).toMatchObject({ ok: true, failures });
    }
    expect(t.errors).toEqual([
      'credential api: the secret file is empty; the value in use is kept',
      'credential api: the secret file holds more than one line; the value in use is kept',
      'credential api: the secret file cannot be read (ENOENT); the value in use is kept',
    ]);
    expect(p.health().lastError).toBe('the secret file cannot be read (ENOENT); the value in use is kept');
    expect(t.rotations).toEqual([]);
    expect(JSON.stringify(t.errors)).not.toContain('old-value-1');
  } finally {
    p.close?.();
  }
});

/** Secrets cannot print themselves; the masker hides them in responses, across chunk boundaries. */
import { inspect } from 'node:util';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Secret, revealSecret } from '../../src/secret';
import { ResponseMasker } from '../../src/credential-injector/masker';
import { bindCredential } from '../../src/credential-injector/injector';
import { createLogger } from '../../src/observability/logger';

const VALUE = 'sk-live-1234567890abcdef';

test('a Secret renders as [REDACTED] in every printing path', () => {
  const s = new Secret(VALUE, 'env X');
  expect(String(s)).toBe('[REDACTED]');
  expect(`${s}`).toBe('[REDACTED]');
  expect(JSON.stringify({ s })).toBe('{"s":"[REDACTED]"}');
  expect(inspect({ s }, { depth: 5 })).not.toContain(VALUE);
  expect(Object.keys(s)).toEqual(['source']);
  expect(revealSecret(s)).toBe(VALUE);
  let logged = '';
  const log = createLogger('info', { write: (l: string) => (logged += l) } as never);
  log.info({ s, nested: { s } }, 'x');
  expect(logged).toContain('[REDACTED]');
  expect(logged).not.toContain(VALUE);
});

async function maskChunks(masker: ResponseMasker, chunks: string[]): Promise<string> {
  let out = '';
  await pipeline(
    Readable.from(chunks.map((c) => Buffer.from(c))),
    masker.stream(),
    new Writable({
      write(c, _e, d) {
        out += c.toString();
        d();
      },
    }),
  );
  return out;
}

test('masks a secret split across chunks, keeping the length', async () => {
  const m = new ResponseMasker([VALUE]);
  const text = `a${VALUE}b${VALUE}`;
  for (let cut = 1; cut < text.length; cut++) {
    const out = await maskChunks(m, [text.slice(0, cut), text.slice(cut)]);
    expect(out).toBe(`a${'*'.repeat(VALUE.length)}b${'*'.repeat(VALUE.length)}`);
  }
});

test('holds back nothing when no secret could start at the end of a chunk', async () => {
  const m = new ResponseMasker([VALUE]);
  const emitted: string[] = [];
  const t = m.stream();
  t.on('data', (c: Buffer) => emitted.push(c.toString()));
  t.write(Buffer.from('data: one\n\n'));
  await new Promise((r) => setImmediate(r));
  expect(emitted).toEqual(['data: one\n\n']);
  t.write(Buffer.from('x sk-li'));
  await new Promise((r) => setImmediate(r));
  expect(emitted[1]).toBe('x ');
  t.end(Buffer.from('ve-nope'));
  await new Promise((r) => t.on('end', r));
  expect(emitted.join('')).toBe('data: one\n\nx sk-live-nope');
});

test('basic credentials mask the password and the encoded pair; headers are masked', () => {
  const b = bindCredential({ name: 'legacy', type: 'basic', username: 'svc', password: new Secret('pa55word!', 'env P'), rotation: null });
  const headers: Record<string, string> = {};
  b.attach(headers);
  const encoded = Buffer.from('svc:pa55word!').toString('base64');
  expect(headers.authorization).toBe(`Basic ${encoded}`);
  expect(b.masker.maskString(`echo ${encoded} and pa55word!`)).toBe(`echo ${'*'.repeat(encoded.length)} and *********`);
  expect(JSON.stringify(b)).not.toContain('pa55word');
  expect(inspect(b, { depth: 10 })).not.toContain('pa55word');
});

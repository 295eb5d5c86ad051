/**
 * Property tests for the masker (G2): a random secret, embedded in random text in a random one of
 * the supported encodings, cut into random chunks (and, for event streams, spread over random
 * `data:` lines and events), never reaches the output; and the multi-pattern matcher finds
 * exactly what a naive search finds. A seeded generator keeps failures reproducible.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { dataLines, ResponseMasker } from '../../src/credential-injector/masker';
import { FewNeedles, MultiMatcher } from '../../src/credential-injector/multi-matcher';
import { compileNeedles } from '../../src/credential-injector/needles';

/** mulberry32: small, seeded, good enough to spread cases. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=:"\\ %&<>!é€';

function randomString(rand: () => number, min: number, max: number, charset = CHARSET): string {
  const n = min + Math.floor(rand() * (max - min + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += charset[Math.floor(rand() * charset.length)];
  return s;
}

/** Each encoding applied to a whole text that embeds the secret (written independently of needles.ts). */
const ENCODINGS: Record<string, (text: string) => string> = {
  raw: (t) => t,
  base64: (t) => Buffer.from(t).toString('base64'),
  base64url: (t) => Buffer.from(t).toString('base64url'),
  hex: (t) => Buffer.from(t).toString('hex'),
  HEX: (t) => Buffer.from(t).toString('hex').toUpperCase(),
  uri: (t) => encodeURIComponent(t),
  form: (t) => new URLSearchParams({ q: t }).toString().slice(2),
  json: (t) => JSON.stringify(t),
  jsonInJson: (t) => JSON.stringify(JSON.stringify(t)),
  unicode: (t) => [...t].map((c) => [...Buffer.from(c, 'utf16le').swap16().toString('hex').match(/.{4}/g)!].map((h) => `\\u${h}`).join('')).join(''),
};

/** The text whose presence in the output means the secret leaked, for each encoding. */
function leakMarkers(secret: string, encoding: string): string[] {
  switch (encoding) {
    case 'base64':
    case 'base64url':
      // Any alignment: what the agent could decode is checked by decoding below.
      return [];
    default:
      return [ENCODINGS[encoding](secret).replace(/^"|"$/g, '')];
  }
}

/** Splits into 1..8 random chunks. */
function chunk(rand: () => number, buf: Buffer): Buffer[] {
  const cuts = new Set<number>();
  const n = Math.floor(rand() * 8);
  for (let i = 0; i < n; i++) cuts.add(1 + Math.floor(rand() * Math.max(1, buf.length - 1)));
  const points = [0, ...[...cuts].sort((a, b) => a - b), buf.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < points.length; i++) if (points[i + 1] > points[i]) out.push(buf.subarray(points[i], points[i + 1]));
  return out;
}

async function through(masker: ResponseMasker, sse: boolean, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    masker.stream({ sse }),
    new Writable({
      write(c: Buffer, _e, d) {
        out.push(c);
        d();
      },
    }),
  );
  return Buffer.concat(out);
}

/** The joined payload of an event stream, as a client that concatenates events would see it. */
function joinedData(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .filter((l) => l.startsWith('data:'))
    .map((l) => l.slice(5).replace(/^ /, ''))
    .join('');
}

test('G2: a random secret in a random encoding, randomly chunked, never reaches the output', async () => {
  const rand = rng(0x5eed);
  for (let i = 0; i < 400; i++) {
    const secret = randomString(rand, 8, 48);
    const masker = new ResponseMasker([secret]);
    const encoding = Object.keys(ENCODINGS)[Math.floor(rand() * Object.keys(ENCODINGS).length)];
    const text = `${randomString(rand, 0, 20)}${secret}${randomString(rand, 0, 20)}`;
    const encoded = ENCODINGS[encoding](text);
    const body = Buffer.from(`{"x":1,"v":${JSON.stringify(encoded)},"y":"${randomString(rand, 0, 10, 'abc')}"}`);
    const outBytes = await through(masker, false, chunk(rand, body));
    expect(outBytes.length).toBe(body.length);
    const out = outBytes.toString();
    for (const marker of leakMarkers(secret, encoding)) expect(out).not.toContain(marker);
    const v = (JSON.parse(out) as { v: string }).v;
    if (encoding.startsWith('base64'))
      expect(Buffer.from(v, encoding === 'base64' ? 'base64' : 'base64url').toString('latin1')).not.toContain(Buffer.from(secret).toString('latin1'));
    expect(v).not.toContain(secret);
  }
});

test('G2: a random secret spread over random SSE data lines and events never reaches the joined data', async () => {
  const rand = rng(0xe7e7);
  for (let i = 0; i < 300; i++) {
    const secret = randomString(rand, 8, 40, CHARSET.replace(/[\r\n]/g, ''));
    const masker = new ResponseMasker([secret]);
    const payload = `${randomString(rand, 0, 12, 'xyz ')}${secret}${randomString(rand, 0, 12, 'xyz ')}`;
    // Cut the payload into pieces, each a data line; some pieces end their event.
    let sse = rand() < 0.3 ? ': comment\n' : '';
    let at = 0;
    while (at < payload.length) {
      const n = 1 + Math.floor(rand() * 6);
      const eol = ['\n', '\r\n', '\r'][Math.floor(rand() * 3)];
      sse += `data:${rand() < 0.5 ? ' ' : ''}${payload.slice(at, at + n)}${eol}${rand() < 0.5 ? eol : ''}`;
      if (rand() < 0.2) sse += `id: ${Math.floor(rand() * 100)}\n`;
      at += n;
    }
    sse += '\n';
    const outBytes = await through(masker, true, chunk(rand, Buffer.from(sse)));
    expect(outBytes.length).toBe(Buffer.byteLength(sse));
    const out = outBytes.toString();
    expect(joinedData(out)).not.toContain(secret);
    expect(out).not.toContain(secret);
  }
});

test('G2: an event stream masked whole (maskBody) hides a secret in its joined data, one data line or many', () => {
  const rand = rng(0xb0d7);
  for (let i = 0; i < 300; i++) {
    const secret = randomString(rand, 8, 40, CHARSET.replace(/[\r\n]/g, ''));
    const masker = new ResponseMasker([secret]);
    const payload = `${randomString(rand, 0, 12, 'xyz ')}${secret}${randomString(rand, 0, 12, 'xyz ')}`;
    // A third are one event of one data line, as an MCP tools/call answer; the rest are piecewise.
    const whole = rand() < 0.33;
    let sse = rand() < 0.3 ? ': comment data: x\n' : '';
    if (rand() < 0.5) sse += 'event: message\n';
    let at = 0;
    while (at < payload.length) {
      const n = whole ? payload.length : 1 + Math.floor(rand() * 6);
      const eol = ['\n', '\r\n', '\r'][Math.floor(rand() * 3)];
      sse += `data:${rand() < 0.5 ? ' ' : ''}${payload.slice(at, at + n)}${eol}${rand() < 0.5 ? eol : ''}`;
      if (rand() < 0.2) sse += `id: ${Math.floor(rand() * 100)}\n`;
      at += n;
    }
    sse += '\n';
    const body = Buffer.from(sse);
    masker.maskBody(body, true);
    expect(body.length).toBe(Buffer.byteLength(sse));
    const out = body.toString();
    expect(joinedData(out)).not.toContain(secret);
    expect(out).not.toContain(secret);
  }
});

test('dataLines counts the lines whose field is data, not "data:" inside a value', () => {
  expect(dataLines(Buffer.from('event: message\ndata: {"a":"data: x"}\n\n'))).toBe(1);
  expect(dataLines(Buffer.from(': data: comment\nid: data:\ndata'))).toBe(0);
  expect(dataLines(Buffer.from('data: a\rdata: b\n'))).toBe(2);
  expect(dataLines(Buffer.from('data:a\r\n\r\ndata:b'))).toBe(2);
});

test('the matcher finds exactly the occurrences a naive search finds', () => {
  const rand = rng(42);
  for (let i = 0; i < 300; i++) {
    const needles = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => Buffer.from(randomString(rand, 1, 9, 'abcab')));
    const text = Buffer.from(randomString(rand, 0, 200, 'abcabx'));
    const m = new MultiMatcher(needles);
    const found = new Set<string>();
    m.scan(text, text.length, (s, e) => found.add(`${s}:${e}`));
    const naive = new Set<string>();
    for (const n of needles) for (let j = text.indexOf(n); j !== -1; j = text.indexOf(n, j + 1)) naive.add(`${j}:${j + n.length}`);
    expect([...found].sort()).toEqual([...naive].sort());
    // The held tail is the longest suffix that is a proper prefix of some needle.
    let expected = text.length;
    for (let j = Math.max(0, text.length - 9); j < text.length && expected === text.length; j++) {
      const rest = text.subarray(j);
      if (needles.some((n) => n.length > rest.length && n.subarray(0, rest.length).equals(rest))) expected = j;
    }
    expect(m.partialTail(text, text.length)).toBe(expected);
  }
});

test('needles: each encoded form is compiled once, and a secret shorter than the floor is still its own needle', () => {
  const n = compileNeedles(['abc'], ['Bearer abc']).map((b) => b.toString());
  expect(n).toContain('abc');
  expect(new Set(n).size).toBe(n.length);
  expect(n).not.toContain('Bearer abc');
  expect(n).toContain(Buffer.from('Bearer abc').toString('base64'));
});

test('FewNeedles finds what MultiMatcher finds and holds the same tail', () => {
  const rand = rng(4242);
  for (let i = 0; i < 300; i++) {
    const needles = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => Buffer.from(randomString(rand, 1, 9, 'abcab')));
    const text = Buffer.from(randomString(rand, 0, 200, 'abcabx'));
    const few = new FewNeedles(needles);
    const multi = new MultiMatcher(needles);
    const hits = (m: FewNeedles | MultiMatcher) => {
      const found = new Set<string>();
      m.scan(text, text.length, (s, e) => found.add(`${s}:${e}`));
      return [...found].sort();
    };
    expect(hits(few)).toEqual(hits(multi));
    expect(few.partialTail(text, text.length)).toBe(multi.partialTail(text, text.length));
  }
});

test('G2: a masker built over others (a per-call SigV4 masker, a route union) masks exactly what one compiled masker masks', async () => {
  const rand = rng(0xc0de);
  for (let i = 0; i < 200; i++) {
    // Overlapping secrets on purpose: a needle of one may start inside another's occurrence.
    const a = randomString(rand, 6, 24, 'abcdef0123');
    const b = rand() < 0.5 ? a.slice(2) + randomString(rand, 2, 8, 'abcdef0123') : randomString(rand, 6, 24, 'abcdef0123');
    const c = randomString(rand, 6, 24, 'abcdef0123');
    const base = new ResponseMasker([a]);
    const composite = [new ResponseMasker([b], [], base, compileNeedles([b])), ResponseMasker.union([base, new ResponseMasker([b]), new ResponseMasker([c])])];
    const reference = [new ResponseMasker([a, b]), new ResponseMasker([a, b, c])];
    const text = [a, b, c, `${a}${b}`, `${b.slice(0, 3)}${a}`, randomString(rand, 0, 8, 'abcdef0123xyz')]
      .sort(() => rand() - 0.5)
      .map((piece) => ENCODINGS[Object.keys(ENCODINGS)[Math.floor(rand() * 4)]](piece))
      .join(randomString(rand, 0, 4, 'xyz'));
    const sse = rand() < 0.5;
    const body = Buffer.from(sse ? `data: ${text}\n\n` : text);
    for (let k = 0; k < composite.length; k++) {
      const whole = [Buffer.from(body), Buffer.from(body)];
      composite[k].maskBody(whole[0], sse);
      reference[k].maskBody(whole[1], sse);
      expect(whole[0].toString()).toBe(whole[1].toString());
      const pieces = chunk(rand, body);
      expect((await through(composite[k], sse, pieces)).toString()).toBe((await through(reference[k], sse, pieces)).toString());
      expect(composite[k].needleCount).toBe(reference[k].needleCount);
      expect(composite[k].maskString(text)).toBe(reference[k].maskString(text));
    }
  }
});

/**
 * Unit tests of the host builtins (src/policy/builtins/). Expected values were produced by the
 * real OPA v1.21.1 (`opa eval`, Go semantics) so these tests pin us to OPA, not to ourselves.
 */
import { HOST_BUILTIN_NAMES, HostBuiltinError, hostBuiltins } from '../../src/policy/builtins';

const call = (name: string, ...args: unknown[]) => hostBuiltins[name](...args);
const rfc = (text: string) => call('time.parse_rfc3339_ns', text) as number;
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** 2024-03-15T14:30:45Z, a Friday; whole seconds are exact as JS numbers. */
const NS = 1710513045000000000;
const NY = 'America/New_York';

function expectBuiltinError(fn: () => unknown, builtin: string, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(HostBuiltinError);
  expect((thrown as HostBuiltinError).builtin).toBe(builtin);
  expect((thrown as Error).message).toMatch(new RegExp(`^${builtin.replace(/\./g, '\\.')}: `));
  expect((thrown as Error).message).toMatch(message);
}

describe('the builtin table', () => {
  it('names every builtin it implements, and nothing else', () => {
    expect([...HOST_BUILTIN_NAMES].sort()).toEqual([
      'io.jwt.decode',
      'sprintf',
      'time.add_date',
      'time.clock',
      'time.date',
      'time.diff',
      'time.format',
      'time.now_ns',
      'time.parse_duration_ns',
      'time.parse_rfc3339_ns',
      'time.weekday',
    ]);
    expect(HOST_BUILTIN_NAMES).not.toContain('time.parse_ns');
  });
});

describe('time.now_ns', () => {
  it('returns the wall clock in nanoseconds, to millisecond resolution', () => {
    const before = Date.now();
    const now = call('time.now_ns') as number;
    const after = Date.now();
    expect(typeof now).toBe('number');
    expect(now).toBeGreaterThanOrEqual(before * 1e6 - 256);
    expect(now).toBeLessThanOrEqual(after * 1e6 + 256);
    expect(JSON.stringify(now)).toMatch(/^\d{13}000000$/); // what the module receives is exact
  });
});

describe('time.clock, time.date, time.weekday', () => {
  it('read a timestamp in UTC by default', () => {
    expect(call('time.clock', NS)).toEqual([14, 30, 45]);
    expect(call('time.date', NS)).toEqual([2024, 3, 15]);
    expect(call('time.weekday', NS)).toBe('Friday');
  });

  it('read it in an IANA zone given as [ns, tz], DST and half-hour offsets included', () => {
    expect(call('time.clock', [NS, NY])).toEqual([10, 30, 45]); // EDT, -4
    expect(call('time.clock', [NS, 'Asia/Kolkata'])).toEqual([20, 0, 45]); // +5:30
    // 2024-03-15T22:30Z is already Saturday in Tokyo.
    expect(call('time.date', [1710541800000000000, 'Asia/Tokyo'])).toEqual([2024, 3, 16]);
    expect(call('time.weekday', [1710541800000000000, 'Asia/Tokyo'])).toBe('Saturday');
    expect(call('time.clock', [NS - 30 * 86_400e9, NY])).toEqual([9, 30, 45]); // February: EST, -5
  });

  it('treat "" and "UTC" as UTC and "Local" as the host zone', () => {
    expect(call('time.clock', [NS, ''])).toEqual([14, 30, 45]);
    expect(call('time.clock', [NS, 'UTC'])).toEqual([14, 30, 45]);
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
    expect(call('time.clock', [NS, 'Local'])).toEqual(call('time.clock', [NS, local]));
  });

  it('handle instants before 1970', () => {
    expect(call('time.date', -1)).toEqual([1969, 12, 31]);
    expect(call('time.clock', -1)).toEqual([23, 59, 59]);
    expect(call('time.weekday', -1)).toBe('Wednesday');
  });

  it('reject unknown zones, offsets as zone names and non-integer or out-of-range timestamps', () => {
    expectBuiltinError(() => call('time.clock', [NS, 'Mars/Olympus_Mons']), 'time.clock', /unknown time zone Mars\/Olympus_Mons/);
    expectBuiltinError(() => call('time.date', [NS, '+05:00']), 'time.date', /unknown time zone/);
    expectBuiltinError(() => call('time.weekday', 1.5), 'time.weekday', /integer number of nanoseconds/);
    expectBuiltinError(() => call('time.clock', 1e19), 'time.clock', /timestamp too big/);
    expectBuiltinError(() => call('time.clock', '2024-03-15'), 'time.clock', /either number \(ns\) or \[number \(ns\), string \(tz\)\]/);
    expectBuiltinError(() => call('time.clock', []), 'time.clock', /either number/);
    expectBuiltinError(() => call('time.clock', [NS, 5]), 'time.clock', /must be string/);
  });
});

describe('time.parse_rfc3339_ns', () => {
  it('parses offsets and fractions as OPA does', () => {
    expect(rfc('2024-03-15T14:30:45Z')).toBe(NS);
    expect(rfc('2024-03-15T10:30:45-04:00')).toBe(NS);
    expect(rfc('2024-03-15T20:00:45+05:30')).toBe(NS);
    expect(rfc('1970-01-01T00:00:00.5Z')).toBe(500000000);
    expect(rfc('1969-12-31T23:59:59.25Z')).toBe(-750000000);
    // Digits past the ninth are ignored, as in Go.
    expect(rfc('1970-01-01T00:00:00.1234567899Z')).toBe(123456789);
  });

  it('passes whole microseconds through JSON exactly, and rounds only below that', () => {
    // The SDK JSON-encodes results and JSON-decodes arguments; simulate that round trip.
    const viaJson = (ns: number) => JSON.parse(JSON.stringify(ns)) as number;
    expect(JSON.stringify(rfc('2024-03-15T14:30:45.123456Z'))).toBe('1710513045123456000');
    expect(call('time.format', viaJson(rfc('2024-03-15T14:30:45.123456Z')))).toBe('2024-03-15T14:30:45.123456Z');
    expect(rfc('2024-03-15T14:30:45.123456789Z')).toBe(Number(1710513045123456789n));
    const formatted = call('time.format', viaJson(rfc('2024-03-15T14:30:45.123456789Z'))) as string;
    const fraction = /\.(\d+)Z$/.exec(formatted)![1].padEnd(9, '0');
    expect(Math.abs(Number(fraction) - 123456789)).toBeLessThanOrEqual(128);
  });

  it('rejects what is not RFC 3339 or not a real date', () => {
    for (const bad of [
      '2024-03-15 14:30:45Z',
      '2024-03-15T14:30:45',
      '2024-02-30T00:00:00Z',
      '2023-02-29T00:00:00Z',
      '2024-03-15T24:00:00Z',
      '2024-03-15T14:30:45+24:00',
      '2024-3-15T14:30:45Z',
      '2024-03-15t14:30:45z',
      '0000-01-01T00:00:00Z',
    ]) {
      expect(() => rfc(bad)).toThrow(HostBuiltinError);
    }
    expectBuiltinError(() => rfc('yesterday'), 'time.parse_rfc3339_ns', /cannot parse "yesterday" as RFC 3339/);
    expectBuiltinError(() => call('time.parse_rfc3339_ns', 42), 'time.parse_rfc3339_ns', /operand 1 must be string but got number/);
  });
});

describe('time.parse_duration_ns', () => {
  const duration = (text: string) => call('time.parse_duration_ns', text);

  it("parses Go durations and OPA's d, w and y units", () => {
    expect(duration('1h30m')).toBe(5_400_000_000_000);
    expect(duration('1.5h')).toBe(5_400_000_000_000);
    expect(duration('-2m3s')).toBe(-123_000_000_000);
    expect(duration('+300ms')).toBe(300_000_000);
    expect(duration('1.5µs')).toBe(1500);
    expect(duration('1.5μs')).toBe(1500);
    expect(duration('.5s')).toBe(500_000_000);
    expect(duration('0')).toBe(0);
    expect(duration('1d')).toBe(86_400_000_000_000);
    expect(duration('2w1d12h')).toBe(1_339_200_000_000_000);
    expect(duration('1y')).toBe(31_536_000_000_000_000);
  });

  it('rejects malformed and overflowing durations', () => {
    expectBuiltinError(() => duration(''), 'time.parse_duration_ns', /invalid duration ""/);
    expectBuiltinError(() => duration('1'), 'time.parse_duration_ns', /missing unit in duration "1"/);
    expectBuiltinError(() => duration('1x'), 'time.parse_duration_ns', /unknown unit "x"/);
    expectBuiltinError(() => duration('1constructor'), 'time.parse_duration_ns', /unknown unit "constructor"/);
    expectBuiltinError(() => duration('.s'), 'time.parse_duration_ns', /invalid duration/);
    expectBuiltinError(() => duration('300y'), 'time.parse_duration_ns', /invalid duration "300y"/);
  });
});

describe('time.add_date', () => {
  it('normalises across month ends the way Go does', () => {
    expect(call('time.add_date', rfc('2024-01-31T08:00:00Z'), 0, 1, 0)).toBe(1709366400000000000); // 2024-03-02
    expect(call('time.add_date', rfc('2023-01-31T08:00:00Z'), 0, 1, 0)).toBe(1677830400000000000); // 2023-03-03
    expect(call('time.add_date', rfc('2024-02-29T00:00:00Z'), 1, 0, 0)).toBe(1740787200000000000); // 2025-03-01
    expect(call('time.add_date', rfc('2024-03-31T00:00:00Z'), 0, -1, 0)).toBe(1709337600000000000); // 2024-03-02
    expect(call('time.add_date', rfc('2024-12-31T00:00:00Z'), 0, 0, 1)).toBe(rfc('2025-01-01T00:00:00Z'));
  });

  it('keeps the wall clock across DST in the given zone, and resolves gaps like Go', () => {
    expect(call('time.add_date', [rfc('2024-03-09T12:00:00-05:00'), NY], 0, 0, 1)).toBe(1710086400000000000);
    expect(call('time.add_date', [rfc('2024-03-09T02:30:00-05:00'), NY], 0, 0, 1)).toBe(1710052200000000000);
    expect(call('time.add_date', [rfc('2024-11-02T01:30:00-04:00'), NY], 0, 0, 1)).toBe(1730611800000000000);
  });

  it('rejects results outside the int64 nanosecond range and non-integer counts', () => {
    expectBuiltinError(() => call('time.add_date', NS, 300, 0, 0), 'time.add_date', /time outside of valid range/);
    expectBuiltinError(() => call('time.add_date', NS, 1e12, 0, 0), 'time.add_date', /time outside of valid range/);
    expectBuiltinError(() => call('time.add_date', NS, 0, 0.5, 0), 'time.add_date', /operand 3 must be an integer/);
  });
});

describe('time.diff', () => {
  it('returns [years, months, days, hours, minutes, seconds] like OPA', () => {
    expect(call('time.diff', rfc('2024-01-31T10:00:00Z'), rfc('2024-03-01T09:30:15Z'))).toEqual([0, 1, 0, 23, 30, 15]);
    expect(call('time.diff', rfc('2020-02-29T00:00:00Z'), rfc('2024-02-28T23:59:59Z'))).toEqual([3, 11, 28, 23, 59, 59]);
    // Order does not matter.
    expect(call('time.diff', rfc('2024-02-28T23:59:59Z'), rfc('2020-02-29T00:00:00Z'))).toEqual([3, 11, 28, 23, 59, 59]);
  });

  it("reads both times in the first operand's zone", () => {
    expect(call('time.diff', [rfc('2024-03-10T12:00:00Z'), NY], rfc('2024-03-09T12:00:00Z'))).toEqual([0, 0, 1, 1, 0, 0]);
  });
});

describe('time.format', () => {
  const fmt = (x: unknown) => call('time.format', x);

  it('defaults to RFC3339Nano in UTC', () => {
    expect(fmt(1710513045123000000)).toBe('2024-03-15T14:30:45.123Z');
    expect(fmt(NS)).toBe('2024-03-15T14:30:45Z');
    expect(fmt([NS, NY])).toBe('2024-03-15T10:30:45-04:00');
  });

  it("accepts OPA's named layouts and Go reference-time layouts", () => {
    expect(fmt([NS, 'Asia/Kolkata', 'RFC3339'])).toBe('2024-03-15T20:00:45+05:30');
    expect(fmt([NS, 'UTC', 'RFC1123'])).toBe('Fri, 15 Mar 2024 14:30:45 UTC');
    expect(fmt([NS, 'Asia/Kolkata', 'Mon, 02 Jan 2006 15:04:05 -0700'])).toBe('Fri, 15 Mar 2024 20:00:45 +0530');
    expect(fmt([1710513045120000000, NY, 'Monday January _2 3:04:05.000 PM Z07:00 __2 002 06 1/2'])).toBe(
      'Friday March 15 10:30:45.120 AM -04:00  75 075 24 3/15',
    );
    expect(fmt([1704067200000000000, '', 'Jan _2 ,999 .000000 Z0700 -07 Janet Month'])).toBe('Jan  1  .000000 Z +00 Janet Month');
    expect(fmt([NS, 'Asia/Kolkata', '15:04 pm 03 _2006'])).toBe('20:00 pm 08 _2024');
  });

  it('refuses zone abbreviations outside UTC rather than print one OPA would not', () => {
    expectBuiltinError(() => fmt([NS, NY, 'RFC1123']), 'time.format', /MST/);
  });
});

describe('io.jwt.decode', () => {
  const header = { alg: 'HS256', typ: 'JWT' };
  const claims = { sub: 'agent-7', scope: ['read'], exp: 1710513045 };
  const signature = Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64url');
  const decode = (token: unknown) => call('io.jwt.decode', token);

  it('returns [header, payload, signature as hex] without verifying anything', () => {
    expect(decode(`${b64(header)}.${b64(claims)}.${signature}`)).toEqual([header, claims, 'deadbeef']);
    // A literal token, padding omitted as JWTs do.
    expect(decode('eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.')).toEqual([{ alg: 'none' }, { sub: 'a' }, '']);
    // Padding present is accepted too.
    expect(decode('eyJhbGciOiJub25lIn0=.eyJzdWIiOiJhIn0=.')).toEqual([{ alg: 'none' }, { sub: 'a' }, '']);
  });

  it('decodes the inner token of a nested JWT (cty: JWT)', () => {
    const inner = `${b64(header)}.${b64(claims)}.${signature}`;
    const outer = `${b64({ alg: 'none', cty: 'JWT' })}.${b64(`"${inner}"`)}.`;
    expect(decode(outer)).toEqual([header, claims, 'deadbeef']);
  });

  it('throws on anything that is not a structurally valid JWS', () => {
    const ok = b64(header);
    const cases: Array<[unknown, RegExp]> = [
      ['not-a-token', /no period separators/],
      [`${ok}.${b64(claims)}`, /must have 3 sections, found 2/],
      [`${ok}.${b64(claims)}.x.y`, /must have 3 sections, found 4/],
      [`!!!!.${b64(claims)}.`, /JWT header had invalid encoding/],
      [`${ok}x.${b64(claims)}.`, /JWT header had invalid encoding/], // length % 4 == 1
      [`${b64('{"alg":')}.${b64(claims)}.`, /bad JWT header: invalid JSON/],
      [`${b64('[1,2]')}.${b64(claims)}.`, /decoded JSON type was not an Object/],
      [`${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.${b64(claims)}.`, /JWE object, which is not supported/],
      [`${ok}.${b64('"just a string"')}.`, /bad JWT payload: decoded JSON type was not an Object/],
      [`${ok}.${b64(claims)}.ab+/`, /JWT signature had invalid encoding/],
      [42, /operand 1 must be string but got number/],
    ];
    for (const [token, message] of cases) expectBuiltinError(() => decode(token), 'io.jwt.decode', message);
  });
});

describe('sprintf', () => {
  // Expected values from `opa eval` (OPA v1.21.1); the corpus in test/fixtures/builtins-corpus
  // checks many more against the real binary.
  it('prints composite values as OPA does, not as JavaScript does', () => {
    expect(call('sprintf', 'denied for %v', [{ tool: 'rm', args: { n: 2 } }])).toBe('denied for {"args": {"n": 2}, "tool": "rm"}');
    expect(call('sprintf', '%v|%v|%v', [null, true, ['x', 1.5]])).toBe('null|true|["x", 1.5]');
  });

  it('formats numbers with Go verbs and flags, rounding half to even', () => {
    expect(call('sprintf', '%d %x %05d %.2f %.2f %e %v', [42, 255, -3, 3.14158, 0.125, 123456.789, 1234567.5])).toBe(
      '42 ff -0003 3.14 0.12 1.234568e+05 1.2345675e+06',
    );
  });

  it('reports a verb of the wrong type, a missing and an extra operand the Go way', () => {
    expect(call('sprintf', '%d %t', ['five', true])).toBe('%!d(string=five) %!t(string=true)');
    expect(call('sprintf', '%v %v', [1])).toBe('1 %!v(MISSING)');
    expect(call('sprintf', '%v', [1, 'two'])).toBe('1%!(EXTRA string=two)');
  });

  it('throws on a directive it cannot format like Go, and on operands of the wrong type', () => {
    expectBuiltinError(() => call('sprintf', '%*d', [5, 1]), 'sprintf', /directive %\* is not supported/);
    expectBuiltinError(() => call('sprintf', '%x', [1.5]), 'sprintf', /directive %x is not supported/);
    expectBuiltinError(() => call('sprintf', '%v', 'x'), 'sprintf', /operand 2 must be array but got string/);
    expectBuiltinError(() => call('sprintf', 5, []), 'sprintf', /operand 1 must be string but got number/);
  });
});

/**
 * Rego builtins that Portcullis supplies to policies compiled to WebAssembly.
 *
 * OPA's Wasm compiler implements about a hundred builtins inside the module; for any other
 * builtin a policy calls, the module calls out to the host (imports `opa_builtin0`…`opa_builtin4`),
 * and @open-policy-agent/opa-wasm looks the name up in its own small table first, then in the
 * `customBuiltins` passed to `loadPolicy`. This module owns that second table: the `time.*`
 * family and `io.jwt.decode`, with the semantics of OPA v1.21 (`v1/topdown/time.go`,
 * `v1/topdown/tokens.go`). capabilities.ts lists exactly these names, so a policy calling a
 * builtin nobody implements fails at `opa build`, not on a request.
 *
 * Calling convention, as implemented by opa-wasm 1.10 (`src/opa.js`):
 * - arguments arrive JSON-decoded: numbers are JS doubles, a Rego set arrives as an array;
 * - the return value is JSON-encoded back into the module, and `undefined` makes the call
 *   undefined (the rule body fails);
 * - a throw unwinds through the module and out of `evaluate()`, so the whole evaluation fails
 *   and the gateway denies. We throw {@link HostBuiltinError}, never strings.
 *
 * Nanosecond precision: OPA counts time in int64 nanoseconds; present-day values (~1.8e18) are
 * above 2^53, so a JS number holds them only to the nearest 256 ns. The SDK cannot carry more:
 * it decodes every argument with plain `JSON.parse` and encodes results with `JSON.stringify`,
 * which rejects BigInt. We read an incoming double back as the shortest decimal that round-trips
 * (`String(n)`), which is the decimal the module sent whenever it had at most 16 significant
 * digits, and return values the same way. Net effect: any timestamp that is a whole number of
 * microseconds (Date.now(), RFC 3339 strings with ≤ 6 fraction digits, `exp` claims) passes
 * through exactly; sub-microsecond digits may be off by up to 128 ns. All arithmetic in between
 * is on integers (BigInt or whole seconds).
 */

/** The error every host builtin throws; its message starts with the builtin's name. */
export class HostBuiltinError extends Error {
  /** The Rego builtin that failed, e.g. `io.jwt.decode`. */
  readonly builtin: string;

  constructor(builtin: string, message: string) {
    super(`${builtin}: ${message}`);
    this.name = 'HostBuiltinError';
    this.builtin = builtin;
  }
}

// ---------------------------------------------------------------------------------------------
// Instants, zones and civil dates

const NS_PER_SEC = 1_000_000_000n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Whole seconds beyond which no int64-nanosecond instant can lie (with a day to spare). */
const MAX_ABS_SECONDS = 9_223_372_036 + 86_400;

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
  'September', 'October', 'November', 'December'];
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** A time zone: `fmt` reads wall clocks through Intl; `null` means UTC (no lookup needed). */
interface Zone {
  readonly fmt: Intl.DateTimeFormat | null;
}

/** An instant split into whole seconds since the epoch and nanoseconds within that second. */
interface Instant {
  readonly sec: number;
  readonly nsec: number;
}

/** OPA's time operand: `ns` or `[ns, tz?, layout?]` (the layout is read by time.format only). */
interface ZonedTime extends Instant {
  readonly zone: Zone;
  readonly layout: string;
}

/** Calendar fields of an instant as seen in a zone. */
interface Wall {
  readonly year: number;
  readonly month: number; // 1..12
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly weekday: number; // 0 = Sunday
  readonly yday: number; // 1..366
  readonly offset: number; // seconds east of UTC
}

const UTC: Zone = { fmt: null };
const zones = new Map<string, Zone>();

/** Resolves an IANA zone name the way OPA does: "" and "UTC" are UTC, "Local" is the host's. */
function loadZone(name: string, builtin: string): Zone {
  if (name === '' || name === 'UTC') return UTC;
  const cached = zones.get(name);
  if (cached) return cached;
  // Intl also takes offsets such as "+05:30"; Go's time.LoadLocation does not, and neither do we.
  let fmt: Intl.DateTimeFormat | undefined;
  if (/^[A-Za-z]/.test(name)) {
    try {
      fmt = new Intl.DateTimeFormat('en-US', {
        timeZone: name === 'Local' ? undefined : name,
        hourCycle: 'h23',
        year: 'numeric', month: 'numeric', day: 'numeric',
        hour: 'numeric', minute: 'numeric', second: 'numeric',
      });
    } catch {
      // RangeError for an unknown zone: reported below.
    }
  }
  if (!fmt) throw new HostBuiltinError(builtin, `unknown time zone ${name}`);
  const zone: Zone = { fmt };
  zones.set(name, zone); // bounded: only names Intl accepts get here
  return zone;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * ((month + 9) % 12) + 2) / 5) + day - 1;
  return era * 146_097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719_468;
}

/** Inverse of {@link daysFromCivil}. */
function civilFromDays(days: number): { year: number; month: number; day: number } {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day: doy - Math.floor((153 * mp + 2) / 5) + 1 };
}

function daysInMonth(year: number, month: number): number {
  return daysFromCivil(year + Math.floor(month / 12), (month % 12) + 1, 1) - daysFromCivil(year, month, 1);
}

/** Offset of `zone` from UTC, in seconds, at the instant `sec`. */
function offsetAt(zone: Zone, sec: number): number {
  if (!zone.fmt) return 0;
  const f: Record<string, number> = {};
  for (const part of zone.fmt.formatToParts(sec * 1000)) f[part.type] = Number(part.value);
  return daysFromCivil(f.year, f.month, f.day) * 86_400 + f.hour * 3600 + f.minute * 60 + f.second - sec;
}

function wallClock(t: ZonedTime): Wall {
  const offset = offsetAt(t.zone, t.sec);
  const local = t.sec + offset;
  const days = Math.floor(local / 86_400);
  const s = local - days * 86_400;
  const { year, month, day } = civilFromDays(days);
  return {
    year, month, day,
    hour: Math.floor(s / 3600), minute: Math.floor(s / 60) % 60, second: s % 60,
    weekday: (((days + 4) % 7) + 7) % 7, // 1970-01-01 was a Thursday
    yday: days - daysFromCivil(year, 1, 1) + 1,
    offset,
  };
}

/**
 * The instant at which `zone` shows the wall time `localSec` (seconds, wall clock read as if
 * UTC). Mirrors Go's time.Date: in a DST gap or overlap, Go's choice is kept.
 */
function fromWallClock(zone: Zone, localSec: number, builtin: string): number {
  if (!Number.isSafeInteger(localSec) || Math.abs(localSec) > MAX_ABS_SECONDS) {
    throw new HostBuiltinError(builtin, 'time outside of valid range');
  }
  const guess = offsetAt(zone, localSec);
  const settled = offsetAt(zone, localSec - guess);
  return localSec - (settled === guess ? guess : settled);
}

/** Splits an int64 nanosecond count carried as a JS number. */
function instantFromNs(ns: number, builtin: string): Instant {
  if (!Number.isInteger(ns)) {
    throw new HostBuiltinError(builtin, `timestamp must be an integer number of nanoseconds, got ${ns}`);
  }
  // String(), not BigInt(ns): 1710513045123000000 arrives as the double 1710513045123000064,
  // whose shortest decimal form is the original text (no exponent below 1e21).
  const big = BigInt(String(ns));
  if (big < INT64_MIN || big > INT64_MAX) throw new HostBuiltinError(builtin, 'timestamp too big');
  let sec = big / NS_PER_SEC;
  let nsec = big % NS_PER_SEC;
  if (nsec < 0n) {
    nsec += NS_PER_SEC;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

/** Joins seconds and nanoseconds back into a JS number, enforcing OPA's int64 range. */
function nsFromInstant(sec: number, nsec: number, builtin: string): number {
  const big = BigInt(sec) * NS_PER_SEC + BigInt(nsec);
  if (big < INT64_MIN || big > INT64_MAX) throw new HostBuiltinError(builtin, 'time outside of valid range');
  return Number(big);
}

// ---------------------------------------------------------------------------------------------
// Operand checks

function stringArg(value: unknown, position: number, builtin: string): string {
  if (typeof value !== 'string') {
    throw new HostBuiltinError(builtin, `operand ${position} must be string but got ${typeName(value)}`);
  }
  return value;
}

function intArg(value: unknown, position: number, builtin: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new HostBuiltinError(builtin, `operand ${position} must be an integer but got ${JSON.stringify(value)}`);
  }
  return value;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** Reads OPA's time operand: a number of ns, or `[ns]`, `[ns, tz]`, `[ns, tz, layout]`. */
function timeArg(value: unknown, position: number, builtin: string): ZonedTime {
  let ns = value;
  let tz = '';
  let layout = '';
  if (Array.isArray(value) && value.length > 0) {
    ns = value[0];
    if (value.length > 1) tz = stringArg(value[1], position, builtin);
    if (value.length > 2) layout = stringArg(value[2], position, builtin);
  }
  if (typeof ns !== 'number') {
    throw new HostBuiltinError(builtin,
      `operand ${position} must be either number (ns) or [number (ns), string (tz)] but got ${typeName(value)}`);
  }
  return { ...instantFromNs(ns, builtin), zone: loadZone(tz, builtin), layout };
}

// ---------------------------------------------------------------------------------------------
// time.parse_rfc3339_ns, time.parse_duration_ns

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * Go's strict RFC 3339 reading (time.Parse's fast path). Go falls back to a laxer layout match
 * (a one-digit hour, a comma before the fraction, offsets up to 24:60); we reject those, which
 * fails closed.
 */
function parseRfc3339(text: string): number {
  const builtin = 'time.parse_rfc3339_ns';
  const invalid = () =>
    new HostBuiltinError(builtin, `cannot parse ${JSON.stringify(text)} as RFC 3339 (2006-01-02T15:04:05Z07:00)`);
  const m = RFC3339.exec(text);
  if (!m) throw invalid();
  const [year, month, day, hour, minute, second, offHour, offMinute] =
    [m[1], m[2], m[3], m[4], m[5], m[6], m[9] ?? '0', m[10] ?? '0'].map(Number);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 59 || offHour > 23 || offMinute > 59) {
    throw invalid();
  }
  const offset = (m[8] === '-' ? -1 : 1) * (offHour * 3600 + offMinute * 60);
  const nsec = Number((m[7] ?? '').slice(0, 9).padEnd(9, '0'));
  const sec = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
  return nsFromInstant(sec, nsec, builtin);
}

const DURATION_UNITS = new Map<string, bigint>([
  ['ns', 1n], ['us', 1_000n], ['µs', 1_000n], ['μs', 1_000n], ['ms', 1_000_000n],
  ['s', NS_PER_SEC], ['m', 60n * NS_PER_SEC], ['h', 3_600n * NS_PER_SEC],
  // OPA's extensions to Go's units (v1/topdown/time.go): a day is 24h, a year 365 days.
  ['d', 86_400n * NS_PER_SEC], ['w', 604_800n * NS_PER_SEC], ['y', 31_536_000n * NS_PER_SEC],
]);

/** Go's time.ParseDuration plus OPA's d/w/y units, computed exactly. */
function parseDuration(text: string): number {
  const builtin = 'time.parse_duration_ns';
  const invalid = (why = 'invalid duration') => new HostBuiltinError(builtin, `time: ${why} ${JSON.stringify(text)}`);
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw invalid();
  let total = 0n;
  while (rest !== '') {
    const [number, whole, fraction = ''] = /^(\d*)(?:\.(\d*))?/.exec(rest)!;
    if (whole === '' && fraction === '') throw invalid();
    rest = rest.slice(number.length);
    const unitName = /^[^\d.]*/.exec(rest)![0];
    if (unitName === '') throw invalid('missing unit in duration');
    const unit = DURATION_UNITS.get(unitName);
    if (unit === undefined) throw invalid(`unknown unit ${JSON.stringify(unitName)} in duration`);
    rest = rest.slice(unitName.length);
    total += BigInt(whole || '0') * unit;
    if (fraction !== '') total += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
    if (total > -INT64_MIN) throw invalid();
  }
  if (negative) total = -total;
  if (total > INT64_MAX) throw invalid();
  return Number(total);
}

// ---------------------------------------------------------------------------------------------
// time.add_date, time.diff

function addDate(t: ZonedTime, years: number, months: number, days: number): number {
  const builtin = 'time.add_date';
  const w = wallClock(t);
  // Like Go's time.AddDate: overflow normalises, so Jan 31 + 1 month is Mar 2 or 3.
  const monthIndex = (w.year + years) * 12 + (w.month - 1) + months;
  const year = Math.floor(monthIndex / 12);
  const dayNumber = daysFromCivil(year, monthIndex - year * 12 + 1, 1) + w.day - 1 + days;
  const localSec = dayNumber * 86_400 + w.hour * 3600 + w.minute * 60 + w.second;
  return nsFromInstant(fromWallClock(t.zone, localSec, builtin), t.nsec, builtin);
}

/** OPA's time.diff: calendar difference, both times read in the first operand's zone. */
function diff(a: ZonedTime, b: ZonedTime): number[] {
  const [early, late] = a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec) ? [b, a] : [a, b];
  const w1 = wallClock({ ...early, zone: a.zone });
  const w2 = wallClock({ ...late, zone: a.zone });
  let [year, month, day, hour, minute, second] = [w2.year - w1.year, w2.month - w1.month,
    w2.day - w1.day, w2.hour - w1.hour, w2.minute - w1.minute, w2.second - w1.second];
  if (second < 0) [second, minute] = [second + 60, minute - 1];
  if (minute < 0) [minute, hour] = [minute + 60, hour - 1];
  if (hour < 0) [hour, day] = [hour + 24, day - 1];
  if (day < 0) [day, month] = [day + daysInMonth(w1.year, w1.month), month - 1];
  if (month < 0) [month, year] = [month + 12, year - 1];
  return [year, month, day, hour, minute, second];
}

// ---------------------------------------------------------------------------------------------
// time.format: Go reference-time layouts

const NAMED_LAYOUTS = new Map<string, string>([
  ['ANSIC', 'Mon Jan _2 15:04:05 2006'],
  ['UnixDate', 'Mon Jan _2 15:04:05 MST 2006'],
  ['RubyDate', 'Mon Jan 02 15:04:05 -0700 2006'],
  ['RFC822', '02 Jan 06 15:04 MST'],
  ['RFC822Z', '02 Jan 06 15:04 -0700'],
  ['RFC850', 'Monday, 02-Jan-06 15:04:05 MST'],
  ['RFC1123', 'Mon, 02 Jan 2006 15:04:05 MST'],
  ['RFC1123Z', 'Mon, 02 Jan 2006 15:04:05 -0700'],
  ['RFC3339', '2006-01-02T15:04:05Z07:00'],
  ['RFC3339Nano', '2006-01-02T15:04:05.999999999Z07:00'],
]);

// Longest first where one element is a prefix of another.
const LAYOUT_ELEMENTS = ['January', 'Jan', 'Monday', 'Mon', 'MST', '2006', '002', '01', '02', '03',
  '04', '05', '06', '15', '1', '2', '__2', '_2', '3', '4', '5', 'PM', 'pm',
  '-07:00:00', '-070000', '-07:00', '-0700', '-07', 'Z07:00:00', 'Z070000', 'Z07:00', 'Z0700', 'Z07'];

/** The layout element starting at `layout[i]`, or null for a literal character (Go's nextStdChunk). */
function layoutElement(layout: string, i: number): string | null {
  const rest = layout.slice(i);
  const fraction = /^[.,](?:0+|9+)(?!\d)/.exec(rest);
  if (fraction) return fraction[0];
  for (const element of LAYOUT_ELEMENTS) {
    if (!rest.startsWith(element)) continue;
    if ((element === 'Jan' || element === 'Mon') && /^[a-z]/.test(rest.slice(3))) return null; // "Janet"
    if (element === '_2' && rest.startsWith('_2006')) return null; // "_" then the year
    return element;
  }
  return null;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

function formatOffset(element: string, offset: number): string {
  if (offset === 0 && element.startsWith('Z')) return 'Z';
  const minutes = Math.trunc(offset / 60);
  const sign = minutes < 0 ? '-' : '+';
  const colon = element.includes(':') ? ':' : '';
  const abs = Math.abs(offset);
  const digits = element.length - (element.match(/:/g)?.length ?? 0) - 1; // 2, 4 or 6
  let out = sign + pad(Math.floor(Math.abs(minutes) / 60), 2);
  if (digits >= 4) out += colon + pad(Math.abs(minutes) % 60, 2);
  if (digits === 6) out += colon + pad(abs % 60, 2);
  return out;
}

function formatElement(element: string, w: Wall, t: ZonedTime): string {
  const hour12 = w.hour % 12 || 12;
  switch (element) {
    case 'January': return MONTHS[w.month - 1];
    case 'Jan': return MONTHS[w.month - 1].slice(0, 3);
    case 'Monday': return WEEKDAYS[w.weekday];
    case 'Mon': return WEEKDAYS[w.weekday].slice(0, 3);
    case 'MST':
      // Go prints the tzdata abbreviation ("CET"); Intl's short names differ ("GMT+1"), so rather
      // than print something OPA would not, we only support the one we can get right.
      if (t.zone.fmt) throw new HostBuiltinError('time.format', 'the MST (zone abbreviation) layout element is only supported in UTC');
      return 'UTC';
    case '2006': return pad(w.year, 4);
    case '06': return pad(w.year % 100, 2);
    case '01': return pad(w.month, 2);
    case '1': return String(w.month);
    case '02': return pad(w.day, 2);
    case '2': return String(w.day);
    case '_2': return String(w.day).padStart(2, ' ');
    case '__2': return String(w.yday).padStart(3, ' ');
    case '002': return pad(w.yday, 3);
    case '15': return pad(w.hour, 2);
    case '3': return String(hour12);
    case '03': return pad(hour12, 2);
    case '04': return pad(w.minute, 2);
    case '4': return String(w.minute);
    case '05': return pad(w.second, 2);
    case '5': return String(w.second);
    case 'PM': return w.hour >= 12 ? 'PM' : 'AM';
    case 'pm': return w.hour >= 12 ? 'pm' : 'am';
  }
  if (element[0] === '-' || element[0] === 'Z') return formatOffset(element, w.offset);
  // Fractional seconds: ".000" keeps n digits, ".999" also drops trailing zeros (and the dot).
  const digits = pad(t.nsec, 9).slice(0, Math.min(element.length - 1, 9));
  if (element[1] === '0') return element[0] + digits;
  const trimmed = digits.replace(/0+$/, '');
  return trimmed === '' ? '' : element[0] + trimmed;
}

function format(t: ZonedTime): string {
  const layout = NAMED_LAYOUTS.get(t.layout || 'RFC3339Nano') ?? t.layout;
  const w = wallClock(t);
  let out = '';
  for (let i = 0; i < layout.length;) {
    const element = layoutElement(layout, i);
    if (element === null) {
      out += layout[i++];
    } else {
      out += formatElement(element, w, t);
      i += element.length;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// io.jwt.decode

const BASE64URL = /^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$/;

/** OPA's base64url.decode: padding optional, alphabet strict (Buffer alone would skip junk). */
function base64UrlDecode(text: string, part: string): Buffer {
  const builtin = 'io.jwt.decode';
  let padded = text;
  if (!text.endsWith('=')) {
    if (text.length % 4 === 1) throw new HostBuiltinError(builtin, `JWT ${part} had invalid encoding`);
    padded += '='.repeat((4 - (text.length % 4)) % 4);
  }
  if (!BASE64URL.test(padded)) throw new HostBuiltinError(builtin, `JWT ${part} had invalid encoding`);
  return Buffer.from(padded, 'base64url');
}

function jsonObject(bytes: Buffer, part: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new HostBuiltinError('io.jwt.decode', `bad JWT ${part}: invalid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HostBuiltinError('io.jwt.decode', `bad JWT ${part}: decoded JSON type was not an Object`);
  }
  return value as Record<string, unknown>;
}

/** Structural decode of a JWS compact token, as OPA's io.jwt.decode; verifies nothing. */
function decodeJwt(token: unknown): [Record<string, unknown>, Record<string, unknown>, string] {
  const builtin = 'io.jwt.decode';
  const text = stringArg(token, 1, builtin);
  if (!text.includes('.')) throw new HostBuiltinError(builtin, 'encoded JWT had no period separators');
  const parts = text.split('.');
  if (parts.length !== 3) throw new HostBuiltinError(builtin, `encoded JWT must have 3 sections, found ${parts.length}`);
  const [headerPart, payloadPart, signaturePart] = parts;
  const header = jsonObject(base64UrlDecode(headerPart, 'header'), 'header');
  if (Object.hasOwn(header, 'enc')) throw new HostBuiltinError(builtin, 'JWT is a JWE object, which is not supported');
  const payloadBytes = base64UrlDecode(payloadPart, 'payload');
  if (header.cty === 'JWT') {
    // A nested token: OPA decodes the inner one (jwt.io quotes it, hence the trim).
    return decodeJwt(payloadBytes.toString('utf8').replace(/^["']+|["']+$/g, ''));
  }
  const payload = jsonObject(payloadBytes, 'payload');
  return [header, payload, base64UrlDecode(signaturePart, 'signature').toString('hex')];
}

// ---------------------------------------------------------------------------------------------
// The table

/**
 * The host builtins, keyed by Rego name: pass as the third argument of opa-wasm's `loadPolicy`.
 * Each takes its operands already JSON-decoded, returns a JSON-encodable value and throws
 * {@link HostBuiltinError} on bad input, which fails the evaluation (the gateway denies).
 *
 * `time.now_ns` reads the clock on every call: unlike OPA, two calls in one evaluation may
 * differ (the clock has millisecond resolution). `time.parse_ns` is deliberately absent: Go's
 * layout parser has too many lenient corners to copy safely, so policies using it fail to build.
 */
export const hostBuiltins: Readonly<Record<string, (...args: any[]) => unknown>> = Object.freeze({
  // Millisecond resolution; the product is not an exact double, but it serialises exactly.
  'time.now_ns': () => Date.now() * 1e6,
  'time.parse_rfc3339_ns': (value: unknown) => parseRfc3339(stringArg(value, 1, 'time.parse_rfc3339_ns')),
  'time.parse_duration_ns': (value: unknown) => parseDuration(stringArg(value, 1, 'time.parse_duration_ns')),
  'time.date': (x: unknown) => {
    const w = wallClock(timeArg(x, 1, 'time.date'));
    return [w.year, w.month, w.day];
  },
  'time.clock': (x: unknown) => {
    const w = wallClock(timeArg(x, 1, 'time.clock'));
    return [w.hour, w.minute, w.second];
  },
  'time.weekday': (x: unknown) => WEEKDAYS[wallClock(timeArg(x, 1, 'time.weekday')).weekday],
  'time.add_date': (x: unknown, years: unknown, months: unknown, days: unknown) =>
    addDate(timeArg(x, 1, 'time.add_date'), intArg(years, 2, 'time.add_date'),
      intArg(months, 3, 'time.add_date'), intArg(days, 4, 'time.add_date')),
  'time.diff': (a: unknown, b: unknown) => diff(timeArg(a, 1, 'time.diff'), timeArg(b, 2, 'time.diff')),
  'time.format': (x: unknown) => format(timeArg(x, 1, 'time.format')),
  'io.jwt.decode': (token: unknown) => decodeJwt(token),
});

/** Names of {@link hostBuiltins}, for the capabilities file. */
export const HOST_BUILTIN_NAMES: readonly string[] = Object.freeze(Object.keys(hostBuiltins));

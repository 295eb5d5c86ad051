/**
 * Instants, time zones and civil dates for the time.* builtins, in OPA's terms: an instant is
 * int64 nanoseconds since the epoch; a zone is an IANA name read through Intl; calendar maths is
 * proleptic Gregorian like Go's time package. See index.ts for the nanosecond-precision caveat.
 */
import { HostBuiltinError, stringArg, typeName } from './args';

/** Nanoseconds in a second, and the int64 range OPA's nanosecond counts live in. */
export const NS_PER_SEC = 1_000_000_000n;
export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
/** Whole seconds beyond which no int64-nanosecond instant can lie (with a day to spare). */
const MAX_ABS_SECONDS = 9_223_372_036 + 86_400;

/** Go's month and weekday names (`time.Month.String`, `time.Weekday.String`). */
export const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
export const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** A time zone: `fmt` reads wall clocks through Intl; `null` means UTC (no lookup needed). */
export interface Zone {
  readonly fmt: Intl.DateTimeFormat | null;
}

/** An instant split into whole seconds since the epoch and nanoseconds within that second. */
export interface Instant {
  readonly sec: number;
  readonly nsec: number;
}

/** OPA's time operand: `ns` or `[ns, tz?, layout?]` (the layout is read by time.format only). */
export interface ZonedTime extends Instant {
  readonly zone: Zone;
  readonly layout: string;
}

/** Calendar fields of an instant as seen in a zone. */
export interface Wall {
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
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
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
export function daysFromCivil(year: number, month: number, day: number): number {
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

/** Days in `month` (1..12) of `year`. */
export function daysInMonth(year: number, month: number): number {
  return daysFromCivil(year + Math.floor(month / 12), (month % 12) + 1, 1) - daysFromCivil(year, month, 1);
}

/** Offset of `zone` from UTC, in seconds, at the instant `sec`. */
function offsetAt(zone: Zone, sec: number): number {
  if (!zone.fmt) return 0;
  const f: Record<string, number> = {};
  for (const part of zone.fmt.formatToParts(sec * 1000)) f[part.type] = Number(part.value);
  return daysFromCivil(f.year, f.month, f.day) * 86_400 + f.hour * 3600 + f.minute * 60 + f.second - sec;
}

/** The calendar fields of `t` as seen in its zone. */
export function wallClock(t: ZonedTime): Wall {
  const offset = offsetAt(t.zone, t.sec);
  const local = t.sec + offset;
  const days = Math.floor(local / 86_400);
  const s = local - days * 86_400;
  const { year, month, day } = civilFromDays(days);
  return {
    year,
    month,
    day,
    hour: Math.floor(s / 3600),
    minute: Math.floor(s / 60) % 60,
    second: s % 60,
    weekday: (((days + 4) % 7) + 7) % 7, // 1970-01-01 was a Thursday
    yday: days - daysFromCivil(year, 1, 1) + 1,
    offset,
  };
}

/**
 * The instant at which `zone` shows the wall time `localSec` (seconds, wall clock read as if
 * UTC). Mirrors Go's time.Date: in a DST gap or overlap, Go's choice is kept.
 */
export function fromWallClock(zone: Zone, localSec: number, builtin: string): number {
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
export function nsFromInstant(sec: number, nsec: number, builtin: string): number {
  const big = BigInt(sec) * NS_PER_SEC + BigInt(nsec);
  if (big < INT64_MIN || big > INT64_MAX) throw new HostBuiltinError(builtin, 'time outside of valid range');
  return Number(big);
}

/** Reads OPA's time operand: a number of ns, or `[ns]`, `[ns, tz]`, `[ns, tz, layout]`. */
export function timeArg(value: unknown, position: number, builtin: string): ZonedTime {
  let ns = value;
  let tz = '';
  let layout = '';
  if (Array.isArray(value) && value.length > 0) {
    ns = value[0];
    if (value.length > 1) tz = stringArg(value[1], position, builtin);
    if (value.length > 2) layout = stringArg(value[2], position, builtin);
  }
  if (typeof ns !== 'number') {
    throw new HostBuiltinError(builtin, `operand ${position} must be either number (ns) or [number (ns), string (tz)] but got ${typeName(value)}`);
  }
  return { ...instantFromNs(ns, builtin), zone: loadZone(tz, builtin), layout };
}

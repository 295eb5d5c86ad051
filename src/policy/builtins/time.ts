/**
 * The time.* builtins, with the semantics of OPA v1.21 (`v1/topdown/time.go`): parsing RFC 3339
 * and durations, calendar arithmetic, and the table entries. `time.now_ns` reads the clock on
 * every call: unlike OPA, two calls in one evaluation may differ (the clock has millisecond
 * resolution). `time.parse_ns` is deliberately absent: Go's layout parser has too many lenient
 * corners to copy safely, so policies using it fail to build.
 */
import { HostBuiltinError, intArg, stringArg, type HostBuiltin } from './args';
import {
  INT64_MAX,
  INT64_MIN,
  NS_PER_SEC,
  WEEKDAYS,
  daysFromCivil,
  daysInMonth,
  fromWallClock,
  nsFromInstant,
  timeArg,
  wallClock,
  type ZonedTime,
} from './time-calendar';
import { format } from './time-format';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * Go's strict RFC 3339 reading (time.Parse's fast path). Go falls back to a laxer layout match
 * (a one-digit hour, a comma before the fraction, offsets up to 24:60); we reject those, which
 * fails closed.
 */
function parseRfc3339(text: string): number {
  const builtin = 'time.parse_rfc3339_ns';
  const invalid = () => new HostBuiltinError(builtin, `cannot parse ${JSON.stringify(text)} as RFC 3339 (2006-01-02T15:04:05Z07:00)`);
  const m = RFC3339.exec(text);
  if (!m) throw invalid();
  const [year, month, day, hour, minute, second, offHour, offMinute] = [m[1], m[2], m[3], m[4], m[5], m[6], m[9] ?? '0', m[10] ?? '0'].map(Number);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59 || offHour > 23 || offMinute > 59) {
    throw invalid();
  }
  const offset = (m[8] === '-' ? -1 : 1) * (offHour * 3600 + offMinute * 60);
  const nsec = Number((m[7] ?? '').slice(0, 9).padEnd(9, '0'));
  const sec = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
  return nsFromInstant(sec, nsec, builtin);
}

const DURATION_UNITS = new Map<string, bigint>([
  ['ns', 1n],
  ['us', 1_000n],
  ['µs', 1_000n],
  ['μs', 1_000n],
  ['ms', 1_000_000n],
  ['s', NS_PER_SEC],
  ['m', 60n * NS_PER_SEC],
  ['h', 3_600n * NS_PER_SEC],
  // OPA's extensions to Go's units (v1/topdown/time.go): a day is 24h, a year 365 days.
  ['d', 86_400n * NS_PER_SEC],
  ['w', 604_800n * NS_PER_SEC],
  ['y', 31_536_000n * NS_PER_SEC],
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
  let [year, month, day, hour, minute, second] = [
    w2.year - w1.year,
    w2.month - w1.month,
    w2.day - w1.day,
    w2.hour - w1.hour,
    w2.minute - w1.minute,
    w2.second - w1.second,
  ];
  if (second < 0) [second, minute] = [second + 60, minute - 1];
  if (minute < 0) [minute, hour] = [minute + 60, hour - 1];
  if (hour < 0) [hour, day] = [hour + 24, day - 1];
  if (day < 0) [day, month] = [day + daysInMonth(w1.year, w1.month), month - 1];
  if (month < 0) [month, year] = [month + 12, year - 1];
  return [year, month, day, hour, minute, second];
}

/** The time.* host builtins, keyed by Rego name. */
export const timeBuiltins: Readonly<Record<string, HostBuiltin>> = {
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
    addDate(timeArg(x, 1, 'time.add_date'), intArg(years, 2, 'time.add_date'), intArg(months, 3, 'time.add_date'), intArg(days, 4, 'time.add_date')),
  'time.diff': (a: unknown, b: unknown) => diff(timeArg(a, 1, 'time.diff'), timeArg(b, 2, 'time.diff')),
  'time.format': (x: unknown) => format(timeArg(x, 1, 'time.format')),
};

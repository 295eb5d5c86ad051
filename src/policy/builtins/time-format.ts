/** time.format: Go's reference-time layouts ("2006-01-02T15:04:05Z07:00"), as OPA formats. */
import { HostBuiltinError } from './args';
import { MONTHS, WEEKDAYS, wallClock, type Wall, type ZonedTime } from './time-calendar';

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
const LAYOUT_ELEMENTS = [
  'January',
  'Jan',
  'Monday',
  'Mon',
  'MST',
  '2006',
  '002',
  '01',
  '02',
  '03',
  '04',
  '05',
  '06',
  '15',
  '1',
  '2',
  '__2',
  '_2',
  '3',
  '4',
  '5',
  'PM',
  'pm',
  '-07:00:00',
  '-070000',
  '-07:00',
  '-0700',
  '-07',
  'Z07:00:00',
  'Z070000',
  'Z07:00',
  'Z0700',
  'Z07',
];

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
    case 'January':
      return MONTHS[w.month - 1];
    case 'Jan':
      return MONTHS[w.month - 1].slice(0, 3);
    case 'Monday':
      return WEEKDAYS[w.weekday];
    case 'Mon':
      return WEEKDAYS[w.weekday].slice(0, 3);
    case 'MST':
      // Go prints the tzdata abbreviation ("CET"); Intl's short names differ ("GMT+1"), so rather
      // than print something OPA would not, we only support the one we can get right.
      if (t.zone.fmt) throw new HostBuiltinError('time.format', 'the MST (zone abbreviation) layout element is only supported in UTC');
      return 'UTC';
    case '2006':
      return pad(w.year, 4);
    case '06':
      return pad(w.year % 100, 2);
    case '01':
      return pad(w.month, 2);
    case '1':
      return String(w.month);
    case '02':
      return pad(w.day, 2);
    case '2':
      return String(w.day);
    case '_2':
      return String(w.day).padStart(2, ' ');
    case '__2':
      return String(w.yday).padStart(3, ' ');
    case '002':
      return pad(w.yday, 3);
    case '15':
      return pad(w.hour, 2);
    case '3':
      return String(hour12);
    case '03':
      return pad(hour12, 2);
    case '04':
      return pad(w.minute, 2);
    case '4':
      return String(w.minute);
    case '05':
      return pad(w.second, 2);
    case '5':
      return String(w.second);
    case 'PM':
      return w.hour >= 12 ? 'PM' : 'AM';
    case 'pm':
      return w.hour >= 12 ? 'pm' : 'am';
  }
  if (element[0] === '-' || element[0] === 'Z') return formatOffset(element, w.offset);
  // Fractional seconds: ".000" keeps n digits, ".999" also drops trailing zeros (and the dot).
  const digits = pad(t.nsec, 9).slice(0, Math.min(element.length - 1, 9));
  if (element[1] === '0') return element[0] + digits;
  const trimmed = digits.replace(/0+$/, '');
  return trimmed === '' ? '' : element[0] + trimmed;
}

/** Formats `t` with its layout (RFC3339Nano when none is given), like Go's Time.Format. */
export function format(t: ZonedTime): string {
  const layout = NAMED_LAYOUTS.get(t.layout || 'RFC3339Nano') ?? t.layout;
  const w = wallClock(t);
  let out = '';
  for (let i = 0; i < layout.length; ) {
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

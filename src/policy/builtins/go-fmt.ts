/**
 * Go's `fmt.Sprintf`, for the three kinds of operand OPA's sprintf hands it (v1/topdown/strings.go):
 * an integer (Go `int64`, or `*big.Int` beyond int64), a float64, or a string — every other Rego
 * value is passed as its printed text (rego-text.ts), so `%v` of an object prints `{"a": 1}` and
 * `%t` of `true` prints `%!t(string=true)`, exactly as OPA does.
 *
 * Supported: the flags `+ - # 0 space`, width and precision as digits, the verbs
 * `v d b o O x X c q U e E f F g G s t %` (and `%#v`), and Go's error forms (`%!d(string=x)`,
 * `%!v(MISSING)`, `%!(EXTRA int64=2)`, `%!(NOVERB)`). Not supported, and refused with an error
 * (so the call denies): `*` widths, explicit argument indexes (`%[1]d`) and hexadecimal floats.
 */
import { HostBuiltinError } from './args';
import { goFormatFloat } from './go-float';
import { canBackquote, goQuote, goQuoteRune, goRune } from './go-quote';

/** One operand as Go's fmt sees it. */
export type GoArg =
  | { readonly type: 'int64' | '*big.Int'; readonly value: bigint }
  | { readonly type: 'float64'; readonly value: number }
  | { readonly type: 'string'; readonly value: string };

/** A parsed `%…` directive. */
interface Spec {
  /** The directive as written, for error messages. */
  readonly text: string;
  readonly plus: boolean;
  readonly minus: boolean;
  readonly sharp: boolean;
  readonly space: boolean;
  readonly zero: boolean;
  readonly width: number | null;
  readonly prec: number | null;
  readonly verb: string;
}

const runeCount = (text: string) => [...text].length;

/** Pads to the width, counting runes; zeros go after the sign (Go's fmt.pad and writePadding). */
function pad(spec: Spec, body: string, numeric: boolean): string {
  const missing = (spec.width ?? 0) - runeCount(body);
  if (missing <= 0) return body;
  if (spec.minus) return body + ' '.repeat(missing);
  if (!spec.zero) return ' '.repeat(missing) + body;
  const sign = numeric && /^[+\- ]/.test(body) ? body[0] : '';
  return sign + '0'.repeat(missing) + body.slice(sign.length);
}

function signOf(negative: boolean, spec: Spec): string {
  if (negative) return '-';
  if (spec.plus) return '+';
  return spec.space ? ' ' : '';
}

const BASES: Record<string, number> = { d: 10, v: 10, b: 2, o: 8, O: 8, x: 16, X: 16 };

function formatInteger(n: bigint, spec: Spec): string {
  const { verb } = spec;
  if (verb === 'c') return pad(spec, goRune(Number(n)), false);
  if (verb === 'q') return pad(spec, goQuoteRune(Number(n), spec.plus), false);
  if (verb === 'U') {
    // Go formats the value as a uint64
    const code = `U+${BigInt.asUintN(64, n)
      .toString(16)
      .toUpperCase()
      .padStart(spec.prec ?? 4, '0')}`;
    return pad(spec, spec.sharp && n >= 0n && n <= 0x10ffffn ? `${code} '${goRune(Number(n))}'` : code, false);
  }
  const negative = n < 0n;
  let digits = (negative ? -n : n).toString(BASES[verb]);
  if (verb === 'X') digits = digits.toUpperCase();
  if (spec.prec !== null) {
    if (spec.prec === 0 && n === 0n) digits = '';
    digits = digits.padStart(spec.prec, '0');
  } else if (spec.zero && !spec.minus && spec.width !== null) {
    digits = digits.padStart(spec.width - (negative || spec.plus || spec.space ? 1 : 0), '0');
  }
  let prefix = '';
  if (verb === 'O') prefix = '0o';
  else if (spec.sharp && verb === 'o' && !digits.startsWith('0')) prefix = '0';
  else if (spec.sharp && verb === 'b') prefix = '0b';
  else if (spec.sharp && verb === 'x') prefix = '0x';
  else if (spec.sharp && verb === 'X') prefix = '0X';
  return pad({ ...spec, zero: false }, signOf(negative, spec) + prefix + digits, true);
}

function formatFloat(x: number, spec: Spec): string {
  if (spec.sharp && spec.verb !== 'v') throw unsupported(spec); // %#v is plain %v for a float
  const negative = x < 0 || Object.is(x, -0);
  const verb = spec.verb === 'v' ? 'g' : spec.verb === 'F' ? 'f' : spec.verb;
  const body = goFormatFloat(x, verb, spec.prec ?? (verb === 'g' || verb === 'G' ? -1 : 6));
  return pad(spec, signOf(negative, spec) + body, true);
}

function formatString(text: string, spec: Spec): string {
  switch (spec.verb) {
    case 'v':
    case 's':
      if (spec.verb === 'v' && spec.sharp) return pad(spec, goQuote(text), false); // %#v: Go syntax
      return pad(spec, spec.prec === null ? text : [...text].slice(0, spec.prec).join(''), false);
    case 'q': {
      const t = spec.prec === null ? text : [...text].slice(0, spec.prec).join('');
      return pad(spec, spec.sharp && canBackquote(t) ? `\`${t}\`` : goQuote(t, spec.plus), false);
    }
    default: {
      // x or X: the UTF-8 bytes in hex
      let bytes = [...Buffer.from(text, 'utf8')];
      if (spec.prec !== null) bytes = bytes.slice(0, spec.prec);
      const hex = bytes.map((b) => b.toString(16).padStart(2, '0'));
      const prefix = spec.verb === 'X' ? '0X' : '0x';
      const body = spec.space ? hex.map((h) => (spec.sharp ? prefix : '') + h).join(' ') : (spec.sharp && hex.length > 0 ? prefix : '') + hex.join('');
      return pad(spec, spec.verb === 'X' ? body.toUpperCase() : body, false);
    }
  }
}

const VERBS: Record<GoArg['type'], string> = {
  int64: 'vdboOxXcqU',
  '*big.Int': 'vdboOxX',
  float64: 'veEfFgG',
  string: 'vsqxX',
};

function unsupported(spec: Spec): HostBuiltinError {
  return new HostBuiltinError('sprintf', `the format directive ${spec.text} is not supported by the gateway`);
}

function formatArg(arg: GoArg, spec: Spec): string {
  if (arg.type === 'float64' && 'xXb'.includes(spec.verb)) throw unsupported(spec);
  if (!VERBS[arg.type].includes(spec.verb)) {
    return `%!${spec.verb}(${arg.type}=${formatArg(arg, { ...spec, verb: 'v' })})`;
  }
  if (arg.type === 'string') return formatString(arg.value, spec);
  if (arg.type === 'float64') return formatFloat(arg.value, spec);
  return formatInteger(arg.value, spec);
}

const PLAIN_V: Spec = { text: '%v', plus: false, minus: false, sharp: false, space: false, zero: false, width: null, prec: null, verb: 'v' };

const DIRECTIVE = /^([+\-# 0]*)(\d*)(?:\.(\d*))?/;

/**
 * Go's parsenum gives up on a width or precision that passes 10^6 before its last digit, and
 * then the rest of the format is swallowed (`%!(NOVERB)`). This also bounds the padding.
 */
const tooLarge = (digits: string | undefined) => digits !== undefined && Number(digits.slice(0, -1)) > 1e6;

/** fmt.Sprintf(format, args...). Throws HostBuiltinError for the unsupported forms above. */
export function goSprintf(format: string, args: readonly GoArg[]): string {
  let out = '';
  let next = 0;
  for (let i = 0; i < format.length; ) {
    const percent = format.indexOf('%', i);
    if (percent < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, percent);
    const m = DIRECTIVE.exec(format.slice(percent + 1))!;
    const at = percent + 1 + m[0].length;
    const verb = String.fromCodePoint(format.codePointAt(at) ?? 0);
    if (at >= format.length || tooLarge(m[2]) || tooLarge(m[3])) {
      out += '%!(NOVERB)';
      break;
    }
    i = at + verb.length;
    if (verb === '*' || verb === '[') throw unsupported({ ...PLAIN_V, text: `%${m[0]}${verb}` });
    if (verb === '%') {
      out += '%';
      continue;
    }
    const flags = m[1];
    const minus = flags.includes('-');
    const spec: Spec = {
      text: `%${m[0]}${verb}`,
      plus: flags.includes('+'),
      minus,
      sharp: flags.includes('#'),
      space: flags.includes(' '),
      zero: flags.includes('0') && !minus,
      width: m[2] === '' ? null : Number(m[2]),
      prec: m[3] === undefined ? null : Number(m[3] || '0'),
      verb,
    };
    out += next < args.length ? formatArg(args[next++], spec) : `%!${verb}(MISSING)`;
  }
  if (next < args.length) {
    const extra = args.slice(next).map((a) => `${a.type}=${formatArg(a, PLAIN_V)}`);
    out += `%!(EXTRA ${extra.join(', ')})`;
  }
  return out;
}

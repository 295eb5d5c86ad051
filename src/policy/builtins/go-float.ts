/**
 * Go's formatting of a float64 (`strconv.FormatFloat` with the 'e', 'f' and 'g' formats, which
 * fmt's `%e %f %g %v` use), computed on the exact decimal value of the double. JavaScript's
 * toFixed and toExponential round differently from Go in exactly-half cases (Go rounds half to
 * even: `%.2f` of 0.125 is 0.12, toFixed gives 0.13), so digits are rounded here.
 */

/** A non-negative decimal 0.d₁d₂… × 10^dp, with no trailing zeros in `digits` ("" is zero). */
interface Decimal {
  readonly digits: string;
  readonly dp: number;
}

function trim(digits: string, dp: number): Decimal {
  const trimmed = digits.replace(/0+$/, '');
  return trimmed === '' ? { digits: '', dp: 0 } : { digits: trimmed, dp };
}

/** The exact decimal value of |x| (every finite double has a finite decimal expansion). */
function exactDecimal(x: number): Decimal {
  if (x === 0) return { digits: '', dp: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exponent = (biased === 0 ? 1 : biased) - 1075; // |x| = mantissa × 2^exponent
  if (exponent >= 0) {
    const text = (mantissa << BigInt(exponent)).toString();
    return trim(text, text.length);
  }
  const text = (mantissa * 5n ** BigInt(-exponent)).toString(); // |x| = text × 10^exponent
  return trim(text, text.length + exponent);
}

/** The shortest digits that read back as x (ECMAScript and Go agree on these). */
function shortestDecimal(x: number): Decimal {
  if (x === 0) return { digits: '', dp: 0 };
  const [mantissa, exp] = Math.abs(x).toExponential().split('e');
  return trim(mantissa.replace('.', ''), Number(exp) + 1);
}

/** Rounds to `nd` significant digits, half to even on the exact value (Go's decimal.Round). */
function round(d: Decimal, nd: number): Decimal {
  if (nd < 0 || nd >= d.digits.length) return d;
  const next = d.digits[nd];
  const exactlyHalf = next === '5' && nd + 1 === d.digits.length;
  const up = exactlyHalf ? nd > 0 && Number(d.digits[nd - 1]) % 2 === 1 : next >= '5';
  if (!up) return trim(d.digits.slice(0, nd), d.dp);
  const kept = d.digits.slice(0, nd).replace(/9+$/, '');
  if (kept === '') return { digits: '1', dp: d.dp + 1 };
  return { digits: kept.slice(0, -1) + String(Number(kept.at(-1)) + 1), dp: d.dp };
}

const digitAt = (d: Decimal, i: number) => (i >= 0 && i < d.digits.length ? d.digits[i] : '0');

function fmtE(d: Decimal, prec: number, e: string): string {
  let out = digitAt(d, 0);
  if (prec > 0) {
    out += '.';
    for (let i = 1; i <= prec; i++) out += digitAt(d, i);
  }
  const exp = d.digits === '' ? 0 : d.dp - 1;
  return `${out}${e}${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

function fmtF(d: Decimal, prec: number): string {
  let out = '';
  if (d.dp > 0) for (let i = 0; i < d.dp; i++) out += digitAt(d, i);
  else out = '0';
  if (prec > 0) {
    out += '.';
    for (let i = 0; i < prec; i++) out += digitAt(d, d.dp + i);
  }
  return out;
}

/**
 * The digits of |x| in format `verb` ('e', 'E', 'f', 'g' or 'G') with precision `prec`, -1 being
 * the shortest representation. The caller adds the sign.
 */
export function goFormatFloat(x: number, verb: string, prec: number): string {
  const shortest = prec < 0;
  const lower = verb.toLowerCase();
  let d: Decimal;
  if (shortest) d = shortestDecimal(x);
  else if (lower === 'e') d = round(exactDecimal(x), prec + 1);
  else if (lower === 'f') d = round(exactDecimal(x), exactDecimal(x).dp + prec);
  else d = round(exactDecimal(x), prec === 0 ? 1 : prec);
  const e = verb === 'E' || verb === 'G' ? 'E' : 'e';
  if (lower === 'e') return fmtE(d, shortest ? Math.max(d.digits.length - 1, 0) : prec, e);
  if (lower === 'f') return fmtF(d, shortest ? Math.max(d.digits.length - d.dp, 0) : prec);
  // 'g': %e when the exponent is below -4 or at least the precision (6 when shortest).
  let p = shortest ? d.digits.length : prec === 0 ? 1 : prec;
  let eprec = p;
  if (eprec > d.digits.length && d.digits.length >= d.dp) eprec = d.digits.length;
  if (shortest) eprec = 6;
  const exp = d.dp - 1;
  if (exp < -4 || exp >= eprec) {
    if (p > d.digits.length) p = d.digits.length;
    return fmtE(d, Math.max(p - 1, 0), e);
  }
  if (p > d.dp) p = d.digits.length;
  return fmtF(d, Math.max(p - d.dp, 0));
}

/**
 * Go's strconv quoting, which OPA's sprintf uses for `%q` and which Rego's own printing of a
 * string (inside `%v` of an array or object) uses too: `strconv.Quote`, `QuoteToASCII`,
 * `QuoteRune` and `CanBackquote`.
 */

/** unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

const SHORT_ESCAPES = new Map<number, string>([
  [0x07, '\\a'],
  [0x08, '\\b'],
  [0x0c, '\\f'],
  [0x0a, '\\n'],
  [0x0d, '\\r'],
  [0x09, '\\t'],
  [0x0b, '\\v'],
]);

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

function escapeRune(char: string, quote: string, asciiOnly: boolean): string {
  const code = char.codePointAt(0)!;
  if (char === quote || char === '\\') return `\\${char}`;
  if (asciiOnly ? code < 0x80 && PRINTABLE.test(char) : PRINTABLE.test(char)) return char;
  const short = SHORT_ESCAPES.get(code);
  if (short) return short;
  if (code < 0x20 || code === 0x7f) return `\\x${hex(code, 2)}`;
  if (code < 0x10000) return `\\u${hex(code, 4)}`;
  return `\\U${hex(code, 8)}`;
}

/** strconv.Quote (or QuoteToASCII): a double-quoted Go string literal. */
export function goQuote(text: string, asciiOnly = false): string {
  let out = '"';
  for (const char of text) out += escapeRune(char, '"', asciiOnly);
  return `${out}"`;
}

/** strconv.QuoteRune (or QuoteRuneToASCII): a single-quoted Go rune literal. */
export function goQuoteRune(code: number, asciiOnly = false): string {
  return `'${escapeRune(goRune(code), "'", asciiOnly)}'`;
}

/** The character for a code point; invalid code points become U+FFFD, as in Go. */
export function goRune(code: number): string {
  const valid = Number.isInteger(code) && code >= 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff);
  return String.fromCodePoint(valid ? code : 0xfffd);
}

/** strconv.CanBackquote: no control characters (tab aside), no backquote, no U+FEFF. */
export function canBackquote(text: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  return !/[\u0000-\u0008\u000a-\u001f\u007f`\ufeff]/u.test(text);
}

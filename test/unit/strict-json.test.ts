/** Strict JSON: grammar, duplicate keys, unsafe integers, depth. */
import { parseJsonBody, parseStrictJson, roundTrips } from '../../src/proxy/strict-json';
import { GatewayError } from '../../src/errors';

function codeOf(text: string): string {
  try {
    parseStrictJson(text);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return (err as GatewayError).code;
  }
  return 'accepted';
}

test.each([
  '{}',
  '[]',
  '{"a":[1,2,{"b":null}],"c":true,"d":false,"e":-0.5e-3,"f":"x\\"y\\u00e9"}',
  ' "s" ',
  '9007199254740991',
  '-9007199254740991',
  '12345678901234568.0',
  '0.1',
  '1.10',
  '-0.0',
  '0.30000000000000004',
  '5e-324',
  '2.2250738585072014e-308',
  '1.7976931348623157e308',
  '1e20',
  '15e-1',
  '1e300',
  '{"a":{"a":1}}',
  '{"__proto__": {"x": 1}}',
])('accepts %s exactly as JSON.parse does', (text) => {
  expect(codeOf(text)).toBe('accepted');
  expect(parseStrictJson(text)).toEqual(JSON.parse(text));
});

test.each([
  ['', 'PC_INVALID_JSON'],
  ['{', 'PC_INVALID_JSON'],
  ['{"a":1,}', 'PC_INVALID_JSON'],
  ['[1,]', 'PC_INVALID_JSON'],
  ["{'a':1}", 'PC_INVALID_JSON'],
  ['{"a":01}', 'PC_INVALID_JSON'],
  ['{"a":1} x', 'PC_INVALID_JSON'],
  ['"\\x"', 'PC_INVALID_JSON'],
  ['"a\nb"', 'PC_INVALID_JSON'],
  ['NaN', 'PC_INVALID_JSON'],
  ['1e999', 'PC_INVALID_JSON'],
  ['{"a":1,"a":2}', 'PC_DUPLICATE_JSON_KEY'],
  ['{"a":1,"\\u0061":2}', 'PC_DUPLICATE_JSON_KEY'],
  ['[{"x":{"k":1,"k":1}}]', 'PC_DUPLICATE_JSON_KEY'],
  ['9007199254740993', 'PC_UNSAFE_JSON_NUMBER'],
  ['{"id":-12345678901234567890}', 'PC_UNSAFE_JSON_NUMBER'],
])('refuses %s with %s', (text, code) => {
  expect(codeOf(text)).toBe(code);
});

test('refuses nesting deeper than 128', () => {
  expect(codeOf('['.repeat(129) + ']'.repeat(129))).toBe('PC_INVALID_JSON');
  expect(codeOf('['.repeat(128) + ']'.repeat(128))).toBe('accepted');
});

test.each([
  '100.00000000000000001',
  '9007199254740993.0',
  '1e-400',
  '12345678901234567890.5',
  '0.30000000000000005',
  '4.9406564584124654e-324',
  '1.00000000000000000000000000001e5',
  '-1e-330',
  '[1, {"a": 3.141592653589793238}]',
])('G5: %s is refused: a double does not hold it exactly as written', (text) => {
  expect(codeOf(text)).toBe('PC_UNSAFE_JSON_NUMBER');
});

test('the round-trip rule compares exact decimal values, not spellings', () => {
  expect(['1', '1.0', '10e-1', '0.1e1', '1.000000000000000000000'].every(roundTrips)).toBe(true);
  expect(['0', '-0', '0e99999', '0.000e-5'].every(roundTrips)).toBe(true);
  expect(['9007199254740993', '1e400', '-1e400', '1.0000000000000001'].some(roundTrips)).toBe(false);
});

test.each(['"\\ud800"', '{"\\udfff": 1}', '"\\ud800\\ud800"', '"\\ude00\\ud83d"'])('G5: the lone surrogate escape %s is PC_INVALID_JSON', (text) => {
  expect(codeOf(text)).toBe('PC_INVALID_JSON');
});

test('a surrogate pair escape and a raw astral character are accepted', () => {
  expect(parseStrictJson('"\\ud83d\\ude00"')).toBe('\u{1F600}');
  expect(parseStrictJson('"\u{1F600}"')).toBe('\u{1F600}');
});

describe('parseJsonBody', () => {
  const bodyCode = (bytes: Buffer): string => {
    try {
      parseJsonBody(bytes);
      return 'accepted';
    } catch (err) {
      return (err as GatewayError).code;
    }
  };

  test('G5: a UTF-8 BOM is refused, never dropped before judging', () => {
    expect(bodyCode(Buffer.from('\ufeff{"a":1}', 'utf8'))).toBe('PC_INVALID_JSON');
    expect(() => parseJsonBody(Buffer.from('\ufeff{}', 'utf8'))).toThrow(/byte order mark/);
  });

  test('G5: invalid UTF-8 is refused', () => {
    expect(bodyCode(Buffer.from([0x22, 0xc0, 0xae, 0x22]))).toBe('PC_INVALID_JSON');
  });

  test('valid UTF-8 JSON parses', () => {
    expect(parseJsonBody(Buffer.from('{"a":"caf\u00e9"}', 'utf8'))).toEqual({ a: 'caf\u00e9' });
  });
});

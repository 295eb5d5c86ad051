/** Strict JSON: grammar, duplicate keys, unsafe integers, depth. */
import { parseStrictJson } from '../../src/proxy/strict-json';
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
  '12345678901234567890.5',
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

/** Newline framing of a child's output: lines across chunks, CRLF, and the bound on line length. */
import { createLineSplitter } from '../../src/mcp/stdio/line-splitter';

function run(chunks: string[], maxLineBytes: number) {
  const lines: string[] = [];
  const overflows: string[] = [];
  const splitter = createLineSplitter({ maxLineBytes, onLine: (l) => lines.push(l), onOverflow: (h) => overflows.push(h) });
  for (const c of chunks) splitter.push(Buffer.from(c));
  splitter.end();
  return { lines, overflows };
}

test('lines split across chunks and several lines in one chunk; CRLF; a last line without newline', () => {
  expect(run(['{"a"', ':1}\n{"b":2}\r\n', 'tail'], 100).lines).toEqual(['{"a":1}', '{"b":2}', 'tail']);
});

test('a line of exactly the bound is kept; a longer one is reported once, cut, and the rest of it skipped', () => {
  expect(run(['abcd\n'], 4)).toEqual({ lines: ['abcd'], overflows: [] });
  expect(run(['abc', 'defgh', 'ij\nok\n'], 4)).toEqual({ lines: ['ok'], overflows: ['abcd'] });
  expect(run(['abcdefgh'], 4)).toEqual({ lines: [], overflows: ['abcd'] });
});

test('the bound must be a positive integer', () => {
  expect(() => run([], 0)).toThrow(RangeError);
});

/**
 * The scan behind the build-time warning (src/policy/builtins/known-differences.ts): which calls
 * it finds, where it says they are, and what it ignores.
 */
import { KNOWN_DIFFERENCES, findKnownDifferenceCalls, knownDifferenceWarning } from '../../src/policy/builtins/known-differences';

const POLICY = `package p

# sprintf("%v", [x]) in a comment is not a call
reason := sprintf("denied for %v", [input.tool])

doc := json.marshal({"b": 1})
text := "format_int(1, 10) inside a string"
raw := \`regex.split("a", b)\`
mine := data.lib.sprintf(1)
spaced := format_int (255, 16)
`;

describe('findKnownDifferenceCalls', () => {
  it('finds each call with its line, and nothing in comments, strings or other packages', () => {
    expect(findKnownDifferenceCalls('policy/p.rego', POLICY)).toEqual([
      { builtin: 'sprintf', file: 'policy/p.rego', line: 4 },
      { builtin: 'json.marshal', file: 'policy/p.rego', line: 6 },
      { builtin: 'format_int', file: 'policy/p.rego', line: 10 },
    ]);
  });

  it('finds nothing in a policy that calls none of them', () => {
    expect(findKnownDifferenceCalls('a.rego', 'package a\n\nallow if concat(",", ["a"]) == "a"\n')).toEqual([]);
  });

  it('words the warning with the file, the line, the builtin and what differs', () => {
    expect(knownDifferenceWarning({ builtin: 'format_int', file: 'lib/a.rego', line: 7 })).toBe(
      `lib/a.rego:7: format_int behaves differently in the gateway than in opa test: ${KNOWN_DIFFERENCES.format_int} (docs/policy.md, Builtins)`,
    );
  });
});

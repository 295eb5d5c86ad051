import { SessionTable } from '../../src/mcp/sessions';

describe('the MCP session table', () => {
  test('G11: a session answers only to the agent that created it, on its route', () => {
    const t = new SessionTable();
    t.bind('r', 's1', 'alice');
    expect(t.check('r', 's1', 'alice')).toBe('ok');
    expect(t.check('r', 's1', 'bob')).toBe('other-agent');
    expect(t.check('other-route', 's1', 'alice')).toBe('unknown');
    expect(t.check('r', 's2', 'alice')).toBe('unknown');
    t.end('r', 's1');
    expect(t.check('r', 's1', 'alice')).toBe('unknown');
  });

  test('an idle session is forgotten', () => {
    let now = 0;
    const t = new SessionTable(1000, 10, () => now);
    t.bind('r', 's1', 'a');
    now = 900;
    expect(t.check('r', 's1', 'a')).toBe('ok');
    now = 1800;
    expect(t.check('r', 's1', 'a')).toBe('ok');
    now = 2801;
    expect(t.check('r', 's1', 'a')).toBe('unknown');
    expect(t.size).toBe(0);
  });

  test('over the cap, the least recently used session goes, however the calls interleave', () => {
    const t = new SessionTable(60_000, 3);
    t.bind('r', 'a', 'x');
    t.bind('r', 'b', 'x');
    t.bind('r', 'c', 'x');
    // c is the newest already; a then c again: the order is b, a, c.
    expect(t.check('r', 'c', 'x')).toBe('ok');
    expect(t.check('r', 'a', 'x')).toBe('ok');
    expect(t.check('r', 'c', 'x')).toBe('ok');
    expect(t.check('r', 'c', 'x')).toBe('ok');
    t.bind('r', 'd', 'x');
    expect(t.check('r', 'b', 'x')).toBe('unknown');
    // The order is now a, c, d: a goes next; ending the newest leaves the order of the rest.
    t.end('r', 'd');
    expect(t.check('r', 'c', 'x')).toBe('ok');
    t.bind('r', 'e', 'x');
    t.bind('r', 'f', 'x');
    expect(t.check('r', 'a', 'x')).toBe('unknown');
    expect(t.check('r', 'c', 'x')).toBe('ok');
    expect(t.size).toBe(3);
  });
});

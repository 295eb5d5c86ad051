/** The benchmark's judgement of issue 13's goals, and the profile summary behind the flame graphs: pure logic over measured rows. */
import { type Row, speedChecks, type TargetName } from '../../bench/report';
import { moduleOf, summarise } from '../../bench/profile';

function row(workload: string, connections: number, target: TargetName, rps: number, cpu: number, p50 = 1): Row {
  return {
    workload,
    connections,
    target,
    requests: rps * 5,
    warmupRequests: 0,
    requestsPerSecond: rps,
    p50Ms: p50,
    p99Ms: p50 * 3,
    errors: 0,
    timeouts: 0,
    non2xx: {},
    foreignCores: 0,
    stealCores: 0,
    cpuUsPerRequest: cpu,
    upstreamCpuUsPerRequest: 50,
    attempts: 1,
  } as Row;
}

describe('speedChecks (issue 13 goals 1–5)', () => {
  const rows: Row[] = [
    row('GET', 16, 'direct', 20000, 50),
    row('GET', 16, 'bare-proxy', 4000, 200),
    row('GET', 16, 'portcullis-strict', 4100, 150),
    row('GET', 16, 'portcullis-relaxed', 5000, 140),
    row('POST 1KB', 16, 'direct', 18000, 60),
    row('POST 1KB', 16, 'bare-proxy', 3500, 220),
    row('POST 1KB', 16, 'portcullis-strict', 3000, 200),
    row('MCP call 1KB', 16, 'direct', 3000, 300),
    row('MCP call 1KB', 16, 'portcullis-strict', 1900, 230),
    row('GET', 1, 'direct', 6000, 80, 0.14),
    row('GET', 1, 'portcullis-strict', 2000, 300, 0.5),
    row('GET', 1, 'portcullis-relaxed', 3000, 250, 0.25),
  ];
  const checks = speedChecks(rows);
  const get = (goal: number, workload: string, target: TargetName, connections = 16) =>
    checks.find((c) => c.goal === goal && c.workload === workload && c.target === target && c.connections === connections);

  it('judges REST throughput against the bare proxy with the bound of each durability', () => {
    expect(get(1, 'GET', 'portcullis-strict')).toMatchObject({ value: 4100 / 4000, bound: 1.0, met: true });
    // Relaxed must reach 1.3×: 1.25× is not enough.
    expect(get(1, 'GET', 'portcullis-relaxed')).toMatchObject({ value: 5000 / 4000, bound: 1.3, met: false });
    expect(get(1, 'POST 1KB', 'portcullis-strict')?.met).toBe(false);
  });

  it('judges strict REST CPU per call against 0.8× the bare proxy, and only strict', () => {
    expect(get(2, 'GET', 'portcullis-strict')).toMatchObject({ value: 0.75, met: true });
    expect(get(2, 'POST 1KB', 'portcullis-strict')).toMatchObject({ value: 200 / 220, met: false });
    expect(get(2, 'GET', 'portcullis-relaxed')).toBeUndefined();
  });

  it('sets MCP CPU against the bare proxy forwarding a 1 KB REST POST, and MCP throughput against direct', () => {
    expect(get(3, 'MCP call 1KB', 'portcullis-strict')).toMatchObject({ value: 230 / 220, met: false });
    expect(get(4, 'MCP call 1KB', 'portcullis-strict')).toMatchObject({ value: 1900 / 3000, met: true });
  });

  it('judges the added p50 at one connection with the bound of each durability', () => {
    expect(get(5, 'GET', 'portcullis-strict', 1)?.value).toBeCloseTo(0.36, 6);
    expect(get(5, 'GET', 'portcullis-strict', 1)?.met).toBe(false);
    expect(get(5, 'GET', 'portcullis-relaxed', 1)?.value).toBeCloseTo(0.11, 6);
    expect(get(5, 'GET', 'portcullis-relaxed', 1)?.met).toBe(true);
  });

  it('makes no check where a baseline row is missing', () => {
    expect(speedChecks(rows.filter((r) => r.target !== 'bare-proxy')).filter((c) => c.goal <= 3 && c.goal !== 3)).toEqual([]);
    expect(speedChecks([row('GET', 16, 'portcullis-strict', 1, 1)])).toEqual([]);
  });
});

describe('profile summary', () => {
  it('names modules the way the flame graphs and docs do', () => {
    expect(moduleOf('file:///w/node_modules/undici/lib/core.js')).toBe('undici');
    expect(moduleOf('/w/node_modules/@open-policy-agent/opa-wasm/src/opa.js')).toBe('@open-policy-agent/opa-wasm');
    expect(moduleOf('file:///w/dist/src/proxy/forward.js')).toBe('src/proxy/forward.ts');
    expect(moduleOf('node:internal/streams/readable')).toBe('node:internal/streams/readable');
    expect(moduleOf('')).toBe('(native)');
  });

  it('counts self time at the sampled frame, inclusive time once per stack, and leaves idle out of busy time', () => {
    const frame = (id: number, functionName: string, lineNumber: number, children: number[] = []) => ({
      id,
      callFrame: { functionName, url: 'file:///w/dist/src/a.js', lineNumber },
      children,
    });
    const profile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 5] },
        frame(2, 'outer', 2, [3]),
        frame(3, 'inner', 3, [4]),
        frame(4, 'outer', 2), // recursion: outer → inner → outer
        { id: 5, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      ],
      samples: [3, 4, 5, 5],
      timeDeltas: [10, 20, 30, 40],
    };
    const s = summarise(profile);
    expect(s.totalUs).toBe(100);
    expect(s.busyUs).toBe(30);
    expect(s.selfByFrame.get('inner src/a.ts:4')).toBe(10);
    expect(s.selfByFrame.get('outer src/a.ts:3')).toBe(20);
    // outer appears twice in the second sample's stack but is counted once.
    expect(s.totalByFrame.get('outer src/a.ts:3')).toBe(30);
    expect([...s.folded.entries()]).toEqual([
      ['outer src/a.ts:3;inner src/a.ts:4', 10],
      ['outer src/a.ts:3;inner src/a.ts:4;outer src/a.ts:3', 20],
    ]);
    // Skipping the first 25 µs (start-up) drops the sample at 10 µs and keeps the one at 30 µs.
    const later = summarise(profile, 25);
    expect(later.busyUs).toBe(20);
    expect(later.selfByFrame.get('inner src/a.ts:4')).toBeUndefined();
  });
});

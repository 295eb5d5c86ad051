/**
 * The local reply for what no stage expected (G4): an unexpected throw inside the pipeline is a
 * 500 PC_INTERNAL_ERROR with its deny record and the stack in the log, never a 400 that blames
 * the agent; and a refused call records the route its path matched. Real
 * sockets; the one stub is an identifier that throws, which no real input can make it do.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { RouteConfig } from '../../src/config/types';
import { GatewayError } from '../../src/errors';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { newContext } from '../../src/proxy/context';
import type { AgentIdentity } from '../../src/identity/identity-method';
import type { PipelineDeps } from '../../src/proxy/deps';
import { runCall } from '../../src/proxy/pipeline';
import { createRouteTable } from '../../src/proxy/route-table';

const routes = [{ name: 'api', kind: 'http', prefix: '/api/', mcp: null, credential: null }] as unknown as RouteConfig[];

async function serve(identify: () => AgentIdentity | null) {
  const records: Record<string, any>[] = [];
  let logs = '';
  const metrics = createMetrics();
  const deps = {
    edge: { hosts: [{ host: '127.0.0.1', port: null }], origins: null },
    identifiers: new Map([['api', { identify }]]),
    unroutedIdentifier: { identify },
    protectedResources: null,
    routes: createRouteTable(routes),
    maxBodyBytes: 1024,
    audit: { append: async (r: Record<string, any>) => void records.push(r), healthy: true, close: async () => undefined },
    metrics,
    log: createLogger(
      'info',
      new Writable({
        write: (c, _e, d) => {
          logs += c;
          d();
        },
      }),
    ),
    memory: { pressed: false },
  } as unknown as PipelineDeps;
  const server = http.createServer((req, res) => void runCall(newContext(req, res, 'id-1'), deps));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, records, logs: () => logs, metrics, close: () => new Promise((r) => server.close(r)) };
}

test('G4: an unexpected throw is answered 500 PC_INTERNAL_ERROR, recorded, and logged with its stack', async () => {
  const s = await serve(() => {
    throw new TypeError('boom inside a stage');
  });
  const r = await fetch(`${s.url}/api/x`);
  expect(r.status).toBe(500);
  expect(((await r.json()) as { error: { code: string } }).error.code).toBe('PC_INTERNAL_ERROR');
  expect(s.records).toEqual([expect.objectContaining({ type: 'decision', decision: 'deny', code: 'PC_INTERNAL_ERROR', status: 500 })]);
  expect(s.logs()).toContain('boom inside a stage');
  expect(s.logs()).toMatch(/"stack":"TypeError: boom inside a stage\\n\s+at /);
  await s.close();
});

test('G4: an unknown agent is refused with the route and canonical path it asked for; a path no route serves, before any key is looked at', async () => {
  let asked = 0;
  const s = await serve(() => {
    asked++;
    throw new GatewayError('PC_UNKNOWN_AGENT', 'the agent key is not recognised');
  });
  expect((await fetch(`${s.url}/api/items?b=1`)).status).toBe(401);
  expect(s.records[0]).toMatchObject({ code: 'PC_UNKNOWN_AGENT', route: 'api', path: '/api/items?b=1', agent: null });
  // The route decides which identity methods apply (routes[].identity): a path no route serves is refused first.
  expect((await fetch(`${s.url}/nowhere`)).status).toBe(404);
  expect(s.records[1]).toMatchObject({ code: 'PC_ROUTE_NOT_FOUND', route: null, path: '/nowhere' });
  expect(asked).toBe(2); // asked again only to name the agent in the record
  // A call that matched no route is counted under route="(none)", never route="".
  const text = await s.metrics.registry.metrics();
  expect(text).toMatch(/portcullis_decisions_total\{route="\(none\)",decision="deny",code="PC_ROUTE_NOT_FOUND"\} 1/);
  expect(text).not.toMatch(/route=""/);
  await s.close();
});

/** The Host/Origin allow-list (src/edge/allow-list.ts) as pure logic: parsing, defaults, judging. */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { defaultHosts, edgeAllowList, hostAndOrigin, judgeEdge, parseHost } from '../../src/edge/allow-list';

const loopback = edgeAllowList({ kind: 'tcp', host: '127.0.0.1', port: 8080 }, null, null);
const judge = (host: string | undefined, origin?: string) =>
  judgeEdge(loopback, host === undefined ? undefined : [host], origin === undefined ? undefined : [origin]);

test('parseHost reads name, name:port and [v6]:port, lower case, and refuses anything else', () => {
  expect(parseHost('LocalHost:8080')).toEqual({ host: 'localhost', port: 8080 });
  expect(parseHost('[::1]:8080')).toEqual({ host: '[::1]', port: 8080 });
  expect(parseHost('gw.internal')).toEqual({ host: 'gw.internal', port: null });
  for (const bad of ['', 'a b', 'localhost:', 'localhost:99999', 'user@localhost', 'localhost/x', '::1', 'localhost:8080:1']) expect(parseHost(bad)).toBeNull();
});

test('G20: the default list is the listen address and the loopback names with the bound port', () => {
  expect(judge('127.0.0.1:8080')).toBeNull();
  expect(judge('localhost:8080')).toBeNull();
  expect(judge('[::1]:8080')).toBeNull();
  // No port means 80 (plain HTTP); another port or name is refused.
  expect(judge('localhost')).toBe('host');
  expect(judge('localhost:8081')).toBe('host');
  expect(judge('evil.example.com:8080')).toBe('host');
  expect(judge(undefined)).toBe('host');
  expect(judgeEdge(loopback, ['localhost:8080', 'localhost:8080'], undefined)).toBe('host');
});

test('G20: Origin, when present, must be http:// and an allowed Host (default ports normalised)', () => {
  expect(judge('localhost:8080', 'http://localhost:8080')).toBeNull();
  expect(judge('localhost:8080', 'http://127.0.0.1:8080')).toBeNull();
  expect(judge('localhost:8080', 'https://localhost:8080')).toBe('origin');
  expect(judge('localhost:8080', 'http://evil.example.com')).toBe('origin');
  expect(judge('localhost:8080', 'null')).toBe('origin');
  expect(judge('localhost:8080', 'http://localhost:8080/path')).toBe('origin');
  const own = edgeAllowList({ kind: 'tcp', host: '127.0.0.1', port: 80 }, [{ host: 'gw.internal', port: null }], ['https://app.example.com']);
  expect(judgeEdge(own, ['gw.internal:1234'], ['https://app.example.com:443'])).toBeNull();
  expect(judgeEdge(own, ['gw.internal'], ['http://gw.internal'])).toBe('origin');
});

test('G20: a listen address given as a name is allowed by that name and by the address it resolved to', () => {
  const hosts = defaultHosts({ kind: 'tcp', host: 'gw.internal', bound: '10.1.2.3', port: 8080 });
  expect(hosts).toEqual(
    expect.arrayContaining([
      { host: 'gw.internal', port: 8080 },
      { host: '10.1.2.3', port: 8080 },
      { host: 'localhost', port: 8080 },
    ]),
  );
  expect(defaultHosts({ kind: 'tcp', host: '::1', bound: '::1', port: 1 })).toEqual([
    { host: '[::1]', port: 1 },
    { host: 'localhost', port: 1 },
    { host: '127.0.0.1', port: 1 },
  ]);
});

test('G20: a wildcard listen address allows the interface addresses; a Unix socket allows localhost', () => {
  const hosts = defaultHosts({ kind: 'tcp', host: '0.0.0.0', port: 9090 }).map((h) => h.host);
  expect(hosts).not.toContain('0.0.0.0');
  const first = Object.values(os.networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4');
  if (first) expect(hosts).toContain(first.address);
  expect(defaultHosts({ kind: 'unix' })).toEqual([{ host: 'localhost', port: null }]);
});

test("G20: hostAndOrigin reads every Host and Origin line exactly as Node's headersDistinct does", async () => {
  const seen: { distinct: { host?: string[]; origin?: string[] }; ours: ReturnType<typeof hostAndOrigin> }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ distinct: { host: req.headersDistinct.host, origin: req.headersDistinct.origin }, ours: hostAndOrigin(req.rawHeaders) });
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const requests = [
    'GET / HTTP/1.1\r\nHost: a.example\r\n\r\n',
    'GET / HTTP/1.1\r\nhOsT: a.example:8080\r\nOrigin: http://x.example\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a.example\r\nX-Host: b\r\nOrigins: c\r\nORIGIN: http://y.example\r\norigin: http://z.example\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
  ];
  for (const raw of requests) {
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end(raw));
      socket
        .on('data', () => undefined)
        .on('close', () => resolve())
        .on('error', reject);
    });
  }
  await new Promise<void>((r) => server.close(() => r()));
  // Whether Node lets the request with two Host lines reach the handler or answers 400 itself,
  // whatever reaches it is read the same both ways.
  expect(seen.length).toBeGreaterThanOrEqual(3);
  for (const { distinct, ours } of seen) {
    expect(ours.host).toEqual(distinct.host);
    expect(ours.origin).toEqual(distinct.origin);
  }
  expect(seen[2].ours.origin).toEqual(['http://y.example', 'http://z.example']);
});

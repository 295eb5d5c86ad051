/** Resolves a listener's keys: its address (host:port or unix:PATH), socket mode and allow-lists, errors located. */
import path from 'node:path';
import type { ResolveContext } from './context';
import type { KeyPath } from './source';
import type { ListenAddress, ListenerConfig } from './types';

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

/** The keys of a listener as validated by the schema. */
interface RawListener {
  readonly listen: string;
  readonly socket_mode: string;
  readonly allowed_hosts?: readonly string[];
  readonly allowed_origins?: readonly string[];
}

function addressOf(ctx: ResolveContext, raw: RawListener, at: KeyPath): ListenAddress {
  if (!raw.listen.startsWith('unix:')) {
    if (ctx.source.has([...at, 'socket_mode']))
      ctx.fail('CONFIG_CONFLICT', [...at, 'socket_mode'], 'socket_mode only goes with a unix:PATH listen address', { key: true });
    return { kind: 'tcp', ...ctx.hostPort(raw.listen, [...at, 'listen']) };
  }
  const file = path.resolve(ctx.baseDir, raw.listen.slice('unix:'.length));
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES)
    ctx.fail('CONFIG_RANGE', [...at, 'listen'], `socket path ${file} is ${Buffer.byteLength(file)} bytes: expected at most ${MAX_SOCKET_PATH_BYTES}`);
  return { kind: 'unix', path: file, mode: Number.parseInt(raw.socket_mode, 8) };
}

/** One listener: the agent's (`at` = []) or the admin's (`at` = ['admin']). */
export function resolveListener(ctx: ResolveContext, raw: RawListener, at: KeyPath): ListenerConfig {
  const hosts = raw.allowed_hosts?.map((entry, i) => {
    const m = /^(.*?)(?::([0-9]+))?$/.exec(entry.toLowerCase())!;
    const port = m[2] === undefined ? null : Number(m[2]);
    if (port !== null && port > 65535) ctx.fail('CONFIG_RANGE', [...at, 'allowed_hosts', i], `port ${port} is out of range: expected 0–65535`);
    return Object.freeze({ host: m[1], port });
  });
  const origins = raw.allowed_origins?.map((entry, i) => {
    try {
      return new URL(entry).origin;
    } catch {
      return ctx.fail('CONFIG_FORMAT', [...at, 'allowed_origins', i], `${JSON.stringify(entry)} is not an origin: expected http(s)://host[:port]`);
    }
  });
  return Object.freeze({
    address: Object.freeze(addressOf(ctx, raw, at)),
    allowedHosts: hosts ? Object.freeze(hosts) : null,
    allowedOrigins: origins ? Object.freeze(origins) : null,
    where: ctx.source.locate([...at, 'listen']),
  });
}

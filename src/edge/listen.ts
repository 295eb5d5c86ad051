/**
 * Binding a listener to its address: a TCP host:port, or a Unix socket file. A socket file is
 * the gateway's only while it runs: one left by a crashed gateway is removed at start, but only
 * when it is a socket and nothing answers on it (a connect is refused), so a start never takes
 * a live gateway's socket or deletes a file that is not a socket. The socket gets its mode
 * (default 0660) before anyone can connect: it is bound under a umask that allows no more, then
 * chmod'ed. It is removed at shutdown, if it is still the one this process bound.
 */
import { chmodSync, lstatSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { ListenAddress } from '../config/types';
import { ConfigError, type ConfigLocation } from '../errors';
import type { ListenPlace } from './allow-list';

/** A bound listener: where it is, its URL-ish name, and how to remove what binding left on disk. */
export interface Bound {
  /** What the allow-list's defaults are built from (the port actually bound). */
  readonly place: ListenPlace;
  /** `http://host:port`, or `unix:/path` for a socket. */
  readonly url: string;
  /** Removes the socket file if it is still ours; call after the server closed. */
  cleanup(): void;
}

/** True when something accepts connections on the socket at `file`. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(file);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Removes a stale socket at `file`; refuses a live one and anything that is not a socket. */
async function clearStale(file: string, where: ConfigLocation): Promise<void> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(file);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) throw new ConfigError('CONFIG_PATH', where, `${file} exists and is not a socket: refusing to replace it`);
  if (await answers(file)) {
    const err = new Error(`listen ${file}: a process is already listening on this socket`) as NodeJS.ErrnoException;
    err.code = 'EADDRINUSE';
    throw err;
  }
  rmSync(file, { force: true });
}

function listenOn(server: net.Server, address: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (address.kind === 'tcp') {
      server.listen(address.port, address.host, done);
      return;
    }
    // The bind is synchronous inside listen(): the umask covers exactly the socket's creation.
    let previous: number | null = null;
    try {
      previous = process.umask(0o777 & ~address.mode);
    } catch {
      /* worker threads cannot set the umask; the chmod below still applies the mode */
    }
    try {
      server.listen(address.path, done);
    } finally {
      if (previous !== null) process.umask(previous);
    }
  });
}

/** Binds `server` to `address`; a socket file gets its mode and a stale one is cleared first. */
export async function bindListener(server: net.Server, address: ListenAddress, where: ConfigLocation): Promise<Bound> {
  if (address.kind === 'tcp') {
    await listenOn(server, address);
    const a = server.address() as net.AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return { place: { kind: 'tcp', host: address.host, bound: a.address, port: a.port }, url: `http://${host}:${a.port}`, cleanup: () => undefined };
  }
  await clearStale(address.path, where);
  await listenOn(server, address);
  chmodSync(address.path, address.mode);
  const ino = lstatSync(address.path).ino;
  return {
    place: { kind: 'unix' },
    url: `unix:${address.path}`,
    cleanup() {
      try {
        const st = lstatSync(address.path);
        if (st.isSocket() && st.ino === ino) rmSync(address.path, { force: true });
      } catch {
        /* already gone (closing a listening socket usually removes it) */
      }
    },
  };
}

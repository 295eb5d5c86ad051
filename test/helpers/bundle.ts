/** Bundle test helpers: packing members into a .tar.gz as `opa build` does (ustar, names with a leading `/`). */
import { gzipSync } from 'node:zlib';

function header(name: string, size: number, type = '0'): Buffer {
  const h = Buffer.alloc(512);
  const put = (value: string, at: number, len: number) => h.write(value.slice(0, len), at, len, 'utf8');
  if (Buffer.byteLength(name) > 100) throw new Error(`test tar: name too long: ${name}`);
  put(name, 0, 100);
  put('0000600\0', 100, 8);
  put('0000000\0', 108, 8);
  put('0000000\0', 116, 8);
  put(`${size.toString(8).padStart(11, '0')}\0`, 124, 12);
  put('00000000000\0', 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** Members: a map, or entries `[name, body, type flag?]` in order (type `0` by default). */
export type Members = ReadonlyMap<string, Buffer> | readonly (readonly [string, Buffer, string?])[];

/** A tar archive of the members, in order. */
export function tarOf(files: Members): Buffer {
  const parts: Buffer[] = [];
  const entries: readonly (readonly [string, Buffer, string?])[] =
    files instanceof Map ? [...files] : (files as readonly (readonly [string, Buffer, string?])[]);
  for (const [name, body, type] of entries) {
    parts.push(header(name, body.length, type), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A gzipped bundle of the members. */
export function packBundle(files: Members): Buffer {
  return gzipSync(tarOf(files));
}

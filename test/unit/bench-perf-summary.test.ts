import { summarisePerf } from '../../bench/perf-summary';

// Stacks as `perf script | inferno-collapse-perf --all` writes them for a Node process run with
// --perf-basic-prof-only-functions: thread first, JIT frames marked _[j], kernel frames _[k].
const FOLDED = [
  "MainThread;node::Start;JS:*'runCall /srv/app/dist/src/proxy/pipeline.js:289:23_[j];JS:*'hash node:internal/crypto/hash:294:14_[j];sha256_block_data_order 30",
  "MainThread;node::Start;JS:*'runCall /srv/app/dist/src/proxy/pipeline.js:289:23_[j];JS:*'Socket._writeGeneric node:net:1231:42_[j];writev;tcp_sendmsg_[k] 50",
  "MainThread;node::Start;JS:*'execute /srv/app/node_modules/undici/lib/dispatcher/client-h1.js:330:11_[j];JS:wasm-function[20]-20-turbofan_[j] 15",
  'libuv-worker;start_thread;uv__fs_work;fdatasync;ext4_sync_file_[k] 5',
  '',
].join('\n');

describe('perf summary (bench/perf-summary.ts)', () => {
  const s = summarisePerf(FOLDED);

  it('counts every sample once, by thread and kernel against user', () => {
    expect(s.samples).toBe(100);
    expect(Object.fromEntries(s.byThread)).toEqual({ MainThread: 95, 'libuv-worker': 5 });
    expect(s.kernel).toBe(55);
  });

  it('charges native and kernel time to the innermost JavaScript frame with a file, by module', () => {
    expect(Object.fromEntries(s.byModule)).toEqual({
      'node:internal/crypto/hash': 30,
      'node:net': 50,
      undici: 15, // the Wasm frame has no file: its caller's module
      '(no JavaScript: libuv-worker)': 5,
    });
  });

  it('ranks the leaf frames', () => {
    expect(s.byFrame.get('tcp_sendmsg_[k]')).toBe(50);
    expect(s.byFrame.get('sha256_block_data_order')).toBe(30);
  });
});

/** The bridged session's SSE event store: replay after an event on its own stream, and its bounds. */
import { MemoryEventStore } from '../../src/mcp/stdio/memory-event-store';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

const note = (n: number): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: n } });

async function replay(store: MemoryEventStore, after: string) {
  const sent: unknown[] = [];
  const stream = await store.replayEventsAfter(after, { send: async (_id, m) => void sent.push((m as any).params?.progress) });
  return { stream, sent };
}

test('replays the later events of the same stream only, skipping priming events', async () => {
  const store = new MemoryEventStore();
  const priming = await store.storeEvent('s1', {} as JSONRPCMessage);
  await store.storeEvent('s1', note(1));
  await store.storeEvent('s2', note(99));
  await store.storeEvent('s1', {} as JSONRPCMessage);
  await store.storeEvent('s1', note(2));
  expect(await store.getStreamIdForEventId(priming)).toBe('s1');
  expect(await replay(store, priming)).toEqual({ stream: 's1', sent: [1, 2] });
});

test('evicts the oldest events past the count or byte bound; an evicted or unknown id is not found', async () => {
  const store = new MemoryEventStore({ maxEvents: 2, maxBytes: 1_000_000 });
  const first = await store.storeEvent('s', note(1));
  const second = await store.storeEvent('s', note(2));
  await store.storeEvent('s', note(3));
  expect(await store.getStreamIdForEventId(first)).toBeUndefined();
  expect(await replay(store, second)).toEqual({ stream: 's', sent: [3] });
  await expect(replay(store, 'nope')).rejects.toThrow('unknown event id');

  const small = new MemoryEventStore({ maxEvents: 100, maxBytes: JSON.stringify(note(1)).length * 2 });
  const a = await small.storeEvent('s', note(1));
  await small.storeEvent('s', note(2));
  await small.storeEvent('s', note(3));
  expect(await small.getStreamIdForEventId(a)).toBeUndefined();
});

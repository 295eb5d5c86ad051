/**
 * The SSE events of one bridged MCP session, kept in memory so a client that loses a stream can
 * resume it with `Last-Event-ID` (the SDK server transport calls this store). Bounded by event
 * count and by bytes: the oldest events go first, and resuming from an evicted event fails
 * with 400 as an unknown event id does.
 */
import type { EventStore, EventId, StreamId } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** How much one session's store keeps. */
export interface EventStoreLimits {
  readonly maxEvents: number;
  readonly maxBytes: number;
}

/** Default bounds: enough to resume a long tool call's progress stream, small enough for 64 sessions. */
export const DEFAULT_EVENT_STORE_LIMITS: EventStoreLimits = { maxEvents: 1000, maxBytes: 4 * 1024 * 1024 };

interface StoredEvent {
  readonly streamId: StreamId;
  readonly seq: number;
  readonly message: JSONRPCMessage;
  readonly bytes: number;
}

/** A bounded in-memory EventStore; event ids are `<sequence>-<stream id>`. */
export class MemoryEventStore implements EventStore {
  private readonly limits: EventStoreLimits;
  /** In insertion (= chronological) order. */
  private readonly events = new Map<EventId, StoredEvent>();
  private seq = 0;
  private bytes = 0;

  constructor(limits: EventStoreLimits = DEFAULT_EVENT_STORE_LIMITS) {
    this.limits = limits;
  }

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const seq = ++this.seq;
    const eventId = `${seq}-${streamId}`;
    const bytes = JSON.stringify(message).length;
    this.events.set(eventId, { streamId, seq, message, bytes });
    this.bytes += bytes;
    for (const [oldId, old] of this.events) {
      if (this.events.size <= this.limits.maxEvents && this.bytes <= this.limits.maxBytes) break;
      if (oldId === eventId) break; // keep the newest even when it alone is over the byte bound
      this.events.delete(oldId);
      this.bytes -= old.bytes;
    }
    return eventId;
  }

  async getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    return this.events.get(eventId)?.streamId;
  }

  async replayEventsAfter(lastEventId: EventId, { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> }): Promise<StreamId> {
    const last = this.events.get(lastEventId);
    if (!last) throw new Error('unknown event id');
    for (const [eventId, event] of [...this.events]) {
      // Priming events (an empty message that only carries an id) are cursors, not content.
      if (event.streamId !== last.streamId || event.seq <= last.seq || !('jsonrpc' in event.message)) continue;
      await send(eventId, event.message);
    }
    return last.streamId;
  }
}

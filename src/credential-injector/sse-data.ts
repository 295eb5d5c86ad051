/**
 * The `data:` payload of a Server-Sent Events stream, as one byte sequence with the position of
 * each byte in the raw stream. An upstream that sends a secret one character per event (or per
 * `data:` line) hands it to any client that joins the payloads, although no single event holds
 * it; the masker scans this joined view too and masks the raw bytes it maps back to. Lines follow
 * the WHATWG parsing rules: CR, LF or CRLF end a line, `data` is the field name up to the first
 * `:`, one space after the colon is not payload, and lines starting with `:` are comments.
 */

/** Parser states: reading a field name; just after `data:` (one space is skipped); in a data value; in another field's value or a comment. */
const State = { Field: 0, DataStart: 1, DataValue: 2, OtherValue: 3 } as const;

const DATA = [0x64, 0x61, 0x74, 0x61];
const CR = 0x0d;
const LF = 0x0a;

/** Payload bytes of a slice of the stream, each with its offset in that slice. */
export interface DataView {
  readonly bytes: Uint8Array;
  readonly offsets: Int32Array;
  readonly length: number;
}

/** Follows one SSE stream across chunks; feed every raw byte exactly once, in order. */
export class SseDataTracker {
  private state: number = State.Field;
  /** Bytes of "data" matched so far in the field name, or -1 once it cannot be "data". */
  private name = 0;
  private afterCr = false;

  /** The payload bytes in raw[from, to), with offsets relative to `from`. */
  feed(raw: Uint8Array, from: number, to: number): DataView {
    const bytes = new Uint8Array(to - from);
    const offsets = new Int32Array(to - from);
    let n = 0;
    let state = this.state;
    let name = this.name;
    let afterCr = this.afterCr;
    for (let i = from; i < to; i++) {
      const b = raw[i];
      if (b === LF && afterCr) {
        afterCr = false;
        continue;
      }
      afterCr = b === CR;
      if (b === CR || b === LF) {
        state = State.Field;
        name = 0;
        continue;
      }
      switch (state) {
        case State.Field:
          if (b === 0x3a) state = name === 4 ? State.DataStart : State.OtherValue;
          else name = name >= 0 && name < 4 && b === DATA[name] ? name + 1 : -1;
          break;
        case State.DataStart:
          // One space after the colon is not payload; anything else is its first byte.
          state = State.DataValue;
          if (b !== 0x20) {
            bytes[n] = b;
            offsets[n] = i - from;
            n++;
          }
          break;
        case State.DataValue:
          bytes[n] = b;
          offsets[n] = i - from;
          n++;
          break;
        case State.OtherValue:
          break;
      }
    }
    this.state = state;
    this.name = name;
    this.afterCr = afterCr;
    return { bytes, offsets, length: n };
  }
}

/** True when a Content-Type is `text/event-stream` (any case, any parameters). */
export function isEventStream(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string') return false;
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === 'text/event-stream';
}

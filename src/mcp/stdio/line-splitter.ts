/**
 * Newline framing for a child process's byte streams. stdio MCP servers write one JSON-RPC
 * message per line on stdout and free-form lines on stderr; this cuts a stream of chunks into
 * lines, with a bound on how long one line may grow, so a child that never writes a newline
 * cannot make the gateway buffer without limit.
 */

/** What to do with the lines. */
export interface LineSplitterOptions {
  /** Longest line kept whole, in bytes (without the newline). */
  readonly maxLineBytes: number;
  /** Each complete line, decoded as UTF-8, a trailing `\r` removed. */
  readonly onLine: (line: string) => void;
  /**
   * A line longer than `maxLineBytes`: called once with its first `maxLineBytes` bytes as soon
   * as it outgrows the bound; the rest of that line, up to its newline, is skipped.
   */
  readonly onOverflow: (head: string) => void;
}

/** Feeds chunks in, calls back with lines. */
export interface LineSplitter {
  push(chunk: Buffer): void;
  /** The stream ended: a last line without a newline is delivered too. */
  end(): void;
}

const NEWLINE = 0x0a;

/** Creates a splitter; `maxLineBytes` must be a positive integer. */
export function createLineSplitter(options: LineSplitterOptions): LineSplitter {
  const { maxLineBytes, onLine, onOverflow } = options;
  if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let skipping = false;

  const take = (tail: Buffer): Buffer => {
    const line = pending.length === 0 ? tail : Buffer.concat([...pending, tail]);
    pending = [];
    pendingBytes = 0;
    return line;
  };
  const emit = (line: Buffer) => {
    const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    onLine(line.toString('utf8', 0, end));
  };
  // Buffers part of a line; past the bound, reports the head and starts skipping.
  const hold = (part: Buffer) => {
    if (skipping || part.length === 0) return;
    if (pendingBytes + part.length <= maxLineBytes) {
      pending.push(part);
      pendingBytes += part.length;
      return;
    }
    onOverflow(take(part).subarray(0, maxLineBytes).toString('utf8'));
    skipping = true;
  };

  return {
    push(chunk) {
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE, start); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
        hold(chunk.subarray(start, nl));
        if (skipping) skipping = false;
        else emit(take(Buffer.alloc(0)));
        start = nl + 1;
      }
      hold(chunk.subarray(start));
    },
    end() {
      if (!skipping && pendingBytes > 0) emit(take(Buffer.alloc(0)));
      pending = [];
      pendingBytes = 0;
      skipping = false;
    },
  };
}

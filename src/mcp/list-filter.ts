/**
 * List filtering: hides from an MCP client the tools, prompts and resources its policy would never
 * let it use, by rewriting the upstream's answer to `tools/list`, `prompts/list` or
 * `resources/list` as it streams through. A JSON body is buffered and rewritten whole; an SSE
 * stream is parsed event by event (WHATWG rules) and every event leaves as soon as it is complete,
 * so progress notifications are never held back. Only the response to the agent's own request is
 * rewritten; every other byte goes through as received.
 *
 * Fail closed: a body or event too large to judge, a JSON body that does not parse, or a
 * visibility function that throws errors the stream; an unfiltered list never goes out. Which
 * message counts as "the response" follows the MCP SDK client rather than the letter of JSON-RPC
 * (it looks up handlers by `Number(id)`, and accepts a JSON array of messages), because rewriting
 * one message too many hides nothing the client may use, while one too few leaks the list.
 */
import { Transform, type TransformCallback } from 'node:stream';

/** The MCP methods whose results are filtered. */
export type ListMethod = 'tools/list' | 'prompts/list' | 'resources/list';

/** What to filter and how to judge each item. */
export interface ListFilterSpec {
  readonly method: ListMethod;
  /** The JSON-RPC id of the agent's list request (string or number); only the response with this id is rewritten. */
  readonly requestId: string | number;
  /** true = keep. Called once per item of result.tools / result.prompts / result.resources. */
  readonly visible: (item: Readonly<Record<string, unknown>>) => boolean;
  /** Called once with how many items were removed (for logs/metrics), after rewriting. */
  readonly onFiltered?: (removed: number, kept: number) => void;
}

/** Largest JSON body, or single SSE event, the filter will hold to judge (16 MiB). */
export const LIST_FILTER_MAX_BYTES = 16 * 1024 * 1024;

/** Why a filter errored its stream. Internal (the stream is cut, nothing goes on the wire); for logs and outcome records. */
export type ListFilterErrorCode =
  /** A JSON body or one SSE event exceeded LIST_FILTER_MAX_BYTES. */
  | 'mcp_list_too_large'
  /** A JSON body is not JSON. */
  | 'mcp_list_invalid_json'
  /** `visible` or `onFiltered` threw. */
  | 'mcp_list_filter_failed';

/** The error a list filter destroys its stream with. */
export class ListFilterError extends Error {
  readonly code: ListFilterErrorCode;

  constructor(code: ListFilterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ListFilterError';
    this.code = code;
  }
}

const LIST_KEY: Readonly<Record<ListMethod, string>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
};

/** True for the methods whose results are filtered. */
export function isListMethod(method: string | null): method is ListMethod {
  return method !== null && Object.hasOwn(LIST_KEY, method);
}

/**
 * A Transform for the upstream response body, or null when the content type is neither JSON nor
 * SSE (the caller decides what an unfilterable list answer deserves). `application/json` and
 * `text/event-stream` are recognised with any parameters and in any case, as the SDK client does.
 * Throws TypeError at build time for a malformed spec; the transform itself never throws, it
 * errors the stream with a ListFilterError.
 */
export function createListFilter(contentType: string | undefined, spec: ListFilterSpec): Transform | null {
  const key = LIST_KEY[spec.method as ListMethod];
  if (typeof key !== 'string' || !Object.hasOwn(LIST_KEY, spec.method)) {
    throw new TypeError(`list filter: method must be one of ${Object.keys(LIST_KEY).join(', ')}`);
  }
  const id = spec.requestId;
  if (!(typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)))) {
    throw new TypeError('list filter: requestId must be a string or a finite number');
  }
  if (typeof spec.visible !== 'function') throw new TypeError('list filter: visible must be a function');
  if (spec.onFiltered !== undefined && typeof spec.onFiltered !== 'function') {
    throw new TypeError('list filter: onFiltered must be a function');
  }
  const rewriter = new MessageRewriter(key, spec);
  switch (mediaType(contentType)) {
    case 'application/json':
      return new JsonListFilter(rewriter);
    case 'text/event-stream':
      return new SseListFilter(rewriter);
    default:
      return null;
  }
}

/** The lower-cased `type/subtype` of a Content-Type value. */
function mediaType(contentType: string | undefined): string {
  if (!contentType) return '';
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Finds the response to the request in a parsed message and filters its list. */
class MessageRewriter {
  constructor(
    private readonly key: string,
    private readonly spec: ListFilterSpec,
  ) {}

  /**
   * The rewritten message, or undefined when nothing in it is the response to filter. A JSON
   * array is treated as a batch, since the SDK client accepts one in a JSON body. Throws
   * ListFilterError when a callback throws.
   */
  rewrite(message: unknown): unknown {
    if (Array.isArray(message)) {
      let changed = false;
      const out = message.map((m) => {
        const r = this.rewriteOne(m);
        if (r === undefined) return m;
        changed = true;
        return r;
      });
      return changed ? out : undefined;
    }
    return this.rewriteOne(message);
  }

  private rewriteOne(message: unknown): unknown {
    if (!isRecord(message) || !this.isOurs(message.id) || !Object.hasOwn(message, 'result')) return undefined;
    const result = message.result;
    if (!isRecord(result) || !Object.hasOwn(result, this.key)) return undefined;
    const items = result[this.key];
    if (!Array.isArray(items)) return undefined;
    const kept: unknown[] = [];
    const { visible, onFiltered } = this.spec;
    try {
      for (const item of items) if (isRecord(item) && visible(item) === true) kept.push(item);
    } catch (err) {
      throw new ListFilterError('mcp_list_filter_failed', `list filter: the visibility check failed: ${describe(err)}`, { cause: err });
    }
    // The message is a fresh parse owned by this filter: replacing the list in place keeps every
    // other member, and the list's position among them.
    result[this.key] = kept;
    if (onFiltered) {
      try {
        onFiltered(items.length - kept.length, kept.length);
      } catch (err) {
        throw new ListFilterError('mcp_list_filter_failed', `list filter: onFiltered threw: ${describe(err)}`, { cause: err });
      }
    }
    return message;
  }

  /** The SDK client finds a response's handler by `Number(id)`: "1", "01" and 1 all answer request 1. */
  private isOurs(id: unknown): boolean {
    if (typeof id !== 'string' && typeof id !== 'number') return false;
    const want = this.spec.requestId;
    return id === want || Number(id) === Number(want);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Buffers a JSON body (up to the cap), then sends it on unchanged or rewritten. */
class JsonListFilter extends Transform {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly rewriter: MessageRewriter) {
    super();
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.size += buf.length;
    if (this.size > LIST_FILTER_MAX_BYTES) {
      this.chunks.length = 0;
      callback(new ListFilterError('mcp_list_too_large', `list filter: the JSON body exceeds ${LIST_FILTER_MAX_BYTES} bytes`));
      return;
    }
    this.chunks.push(buf);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    // An empty body holds no list (a 202, or a HEAD-like answer); nothing to judge.
    if (this.size === 0) return callback();
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    this.chunks.length = 0;
    let message: unknown;
    try {
      // Like fetch's response.json(): UTF-8 with replacement, a leading BOM ignored.
      message = JSON.parse(stripBom(body.toString('utf8')));
    } catch (err) {
      return callback(new ListFilterError('mcp_list_invalid_json', `list filter: the JSON body does not parse: ${describe(err)}`));
    }
    let rewritten: unknown;
    try {
      rewritten = this.rewriter.rewrite(message);
    } catch (err) {
      return callback(err as Error);
    }
    callback(null, rewritten === undefined ? body : Buffer.from(JSON.stringify(rewritten), 'utf8'));
  }
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const DATA = Buffer.from('data');
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** One complete line of the current event: offsets into the event's bytes. */
interface Line {
  readonly start: number;
  /** Length without the terminator. */
  readonly length: number;
  /** Terminator length: 1 (CR or LF), 2 (CRLF), 0 for an unterminated last line at stream end. */
  term: number;
}

/**
 * Parses SSE incrementally on bytes. The current event's bytes are held (as the chunks they
 * arrived in) with the offsets of its complete lines; at the blank line that ends it, the event is
 * sent on: as the same bytes, or, when its data is the response to filter, with its data lines
 * replaced by one `data:` line and every other line kept in place. Splitting on bytes is safe:
 * CR and LF never occur inside a multi-byte UTF-8 sequence.
 */
class SseListFilter extends Transform {
  /** Bytes of the current event from earlier chunks. */
  private held: Buffer[] = [];
  private heldSize = 0;
  /** Complete lines of the current event. */
  private lines: Line[] = [];
  /** The previous chunk ended in CR: an LF starting the next one belongs to that terminator. */
  private crPending = false;
  /** No line has ended yet: the first line may start with a BOM, which clients skip. */
  private firstLine = true;
  /** The first line began with a BOM (only set while that line's event is current). */
  private bomLine: Line | null = null;
  /** Event offset where the current, unfinished line begins. */
  private lineStart = 0;

  constructor(private readonly rewriter: MessageRewriter) {
    super();
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
      this.consume(buf);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.finish();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  private consume(chunk: Buffer): void {
    if (chunk.length === 0) return;
    let from = 0; // where this chunk's bytes of the current event begin
    let scan = 0;
    if (this.crPending) {
      this.crPending = false;
      if (chunk[0] === LF) {
        scan = 1;
        if (this.lines.length === 0 && this.heldSize === 0) {
          // The CR ended a blank line, whose event is already out: the LF follows it alone.
          this.push(chunk.subarray(0, 1));
          from = 1;
        } else {
          this.lines[this.lines.length - 1].term++;
          this.lineStart++;
        }
      }
    }
    let nextLf = chunk.indexOf(LF, scan);
    let nextCr = chunk.indexOf(CR, scan);
    while (nextLf !== -1 || nextCr !== -1) {
      const end = nextCr === -1 || (nextLf !== -1 && nextLf < nextCr) ? nextLf : nextCr;
      let term = 1;
      if (chunk[end] === CR) {
        if (end + 1 === chunk.length) this.crPending = true;
        else if (chunk[end + 1] === LF) term = 2;
      }
      const base = this.heldSize - from; // event offset of chunk index i is base + i
      const line: Line = { start: this.lineStart, length: base + end - this.lineStart, term };
      const next = end + term;
      if (this.isBlank(line, chunk, from, end)) {
        this.dispatch(chunk.subarray(from, next), base + next);
        from = next;
        this.lineStart = 0;
      } else {
        this.lines.push(line);
        this.lineStart = base + next;
      }
      if (nextLf !== -1 && nextLf < next) nextLf = chunk.indexOf(LF, next);
      if (nextCr !== -1 && nextCr < next) nextCr = chunk.indexOf(CR, next);
    }
    if (from < chunk.length) {
      this.held.push(from === 0 ? chunk : chunk.subarray(from));
      this.heldSize += chunk.length - from;
      this.checkSize(this.heldSize);
    }
  }

  /** A blank line ends the event; at the start of the stream a BOM alone also counts as blank. */
  private isBlank(line: Line, chunk: Buffer, from: number, end: number): boolean {
    if (!this.firstLine) return line.length === 0;
    this.firstLine = false;
    if (line.length < 3) return line.length === 0;
    const head = Buffer.concat([...this.held, chunk.subarray(from, end)]).subarray(line.start, line.start + 3);
    if (!head.equals(BOM)) return false;
    this.bomLine = line;
    return line.length === 3;
  }

  /** Sends on the complete current event (held bytes plus `tail`), of `size` bytes. */
  private dispatch(tail: Buffer, size: number): void {
    this.checkSize(size);
    const bytes = this.held.length === 0 ? tail : Buffer.concat([...this.held, tail], size);
    this.push(this.render(bytes, this.lines));
    this.held = [];
    this.heldSize = 0;
    this.lines = [];
    this.bomLine = null;
  }

  /** At stream end an unfinished event goes out as received, unless it carries the response unfiltered. */
  private finish(): void {
    if (this.heldSize === 0) return;
    const bytes = this.held.length === 1 ? this.held[0] : Buffer.concat(this.held, this.heldSize);
    const lines = this.lines.slice();
    if (this.lineStart < bytes.length) {
      const partial: Line = { start: this.lineStart, length: bytes.length - this.lineStart, term: 0 };
      if (this.firstLine && partial.length >= 3 && bytes.subarray(0, 3).equals(BOM)) this.bomLine = partial;
      lines.push(partial);
    }
    // The SSE spec discards an unfinished event, but a client that dispatches it at EOF must not
    // get the list unfiltered; render() sends it byte-for-byte unless it is the response.
    this.push(this.render(bytes, lines));
    this.held = [];
    this.heldSize = 0;
    this.lines = [];
    this.lineStart = 0;
  }

  private checkSize(size: number): void {
    if (size > LIST_FILTER_MAX_BYTES) {
      throw new ListFilterError('mcp_list_too_large', `list filter: an SSE event exceeds ${LIST_FILTER_MAX_BYTES} bytes`);
    }
  }

  /** The event's bytes as they go out: unchanged, or with its data replaced when it is the response. */
  private render(bytes: Buffer, lines: readonly Line[]): Buffer {
    const dataLines: Line[] = [];
    const values: string[] = [];
    for (const line of lines) {
      const start = line === this.bomLine ? line.start + 3 : line.start;
      const end = line.start + line.length;
      if (end - start < 4 || bytes[start] === COLON) continue;
      const colon = bytes.indexOf(COLON, start);
      const nameEnd = colon === -1 || colon >= end ? end : colon;
      if (nameEnd - start !== 4 || !bytes.subarray(start, nameEnd).equals(DATA)) continue;
      let valueStart = nameEnd === end ? end : nameEnd + 1;
      if (valueStart < end && bytes[valueStart] === SPACE) valueStart++;
      dataLines.push(line);
      values.push(bytes.toString('utf8', valueStart, end));
    }
    if (dataLines.length === 0) return bytes;
    const json = this.rewriteData(values.length === 1 ? values[0] : values.join('\n'));
    if (json === undefined) return bytes;
    const parts: Buffer[] = [];
    let at = 0;
    for (const line of dataLines) {
      const lineEnd = line.start + line.length + line.term;
      if (line === dataLines[0]) {
        const keep = line === this.bomLine ? line.start + 3 : line.start;
        parts.push(bytes.subarray(at, keep), Buffer.from(`data: ${json}`, 'utf8'), bytes.subarray(line.start + line.length, lineEnd));
      } else {
        parts.push(bytes.subarray(at, line.start));
      }
      at = lineEnd;
    }
    parts.push(bytes.subarray(at));
    return Buffer.concat(parts);
  }

  /** The filtered JSON text for an event's data, or undefined to send the event unchanged. */
  private rewriteData(data: string): string | undefined {
    // Without a backslash, a JSON text can spell the member "result" only literally: no need to
    // parse notifications and other messages that cannot be the response.
    if (data.indexOf('"result"') === -1 && data.indexOf('\\') === -1) return undefined;
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return undefined; // not JSON: no client can read a list from it
    }
    const rewritten = this.rewriter.rewrite(message);
    return rewritten === undefined ? undefined : JSON.stringify(rewritten);
  }
}

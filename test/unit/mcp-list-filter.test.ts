/**
 * The list filter on its own (pure logic): JSON bodies and SSE streams fed in realistic chunks,
 * what is hidden, what goes through byte-for-byte, and when the stream fails closed.
 */
import type { Transform } from 'node:stream';
import { LIST_FILTER_MAX_BYTES, ListFilterError, createListFilter, type ListFilterSpec, type ListMethod } from '../../src/mcp/list-filter';

const HIDDEN = new Set(['get-env', 'delete-everything']);
const byName = (item: Readonly<Record<string, unknown>>) => !HIDDEN.has(item.name as string);

function spec(over: Partial<ListFilterSpec> = {}): ListFilterSpec {
  return { method: 'tools/list', requestId: 7, visible: byName, ...over };
}

function filter(contentType: string, s: ListFilterSpec = spec()): Transform {
  const t = createListFilter(contentType, s);
  if (!t) throw new Error(`no filter for ${contentType}`);
  return t;
}

/** A filter with its output gathered as it comes out, and its error if any. */
function harness(t: Transform) {
  const out: Buffer[] = [];
  let error: Error | undefined;
  t.on('data', (b: Buffer) => out.push(b));
  const ended = new Promise<void>((resolve) => {
    t.on('end', resolve);
    t.on('error', (e) => {
      error = e;
      resolve();
    });
  });
  return {
    text: () => Buffer.concat(out).toString('utf8'),
    bytes: () => Buffer.concat(out),
    error: () => error,
    /** Writes one chunk and lets the event loop turn, so whatever the filter emits is seen. */
    async write(chunk: Buffer | string) {
      t.write(chunk);
      await new Promise((r) => setImmediate(r));
    },
    async end() {
      t.end();
      await ended;
    },
  };
}

async function runChunks(t: Transform, chunks: Array<Buffer | string>) {
  const h = harness(t);
  for (const c of chunks) await h.write(c);
  await h.end();
  return h;
}

const tool = (name: string) => ({ name, description: `the ${name} tool`, inputSchema: { type: 'object' } });
const toolsResult = (id: unknown, names: string[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ jsonrpc: '2.0', id, result: { tools: names.map(tool), ...extra } });

describe('JSON bodies', () => {
  test('hides the invisible tools and keeps nextCursor, _meta and unknown members', async () => {
    const calls: Array<[number, number]> = [];
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      result: { _meta: { trace: 'abc' }, tools: ['echo', 'get-env', 'get-sum', 'delete-everything'].map(tool), nextCursor: 'page-2', vendor: { x: 1 } },
      extension: true,
    });
    const h = await runChunks(filter('application/json', spec({ onFiltered: (r, k) => calls.push([r, k]) })), [body.slice(0, 40), body.slice(40)]);
    expect(h.error()).toBeUndefined();
    expect(JSON.parse(h.text())).toEqual({
      jsonrpc: '2.0',
      id: 7,
      result: { _meta: { trace: 'abc' }, tools: [tool('echo'), tool('get-sum')], nextCursor: 'page-2', vendor: { x: 1 } },
      extension: true,
    });
    expect(Object.keys(JSON.parse(h.text()).result)).toEqual(['_meta', 'tools', 'nextCursor', 'vendor']);
    expect(calls).toEqual([[2, 2]]);
  });

  test.each<[ListMethod, string]>([
    ['prompts/list', 'prompts'],
    ['resources/list', 'resources'],
  ])('%s filters result.%s and leaves other lists alone', async (method, key) => {
    const items = [
      { name: 'ok', uri: 'file:///ok' },
      { name: 'secret', uri: 'file:///secret' },
    ];
    const body = JSON.stringify({ jsonrpc: '2.0', id: 'r1', result: { [key]: items, tools: [tool('secret')] } });
    const s = spec({ method, requestId: 'r1', visible: (i) => i.name !== 'secret' });
    const h = await runChunks(filter('application/json', s), [body]);
    expect(JSON.parse(h.text()).result).toEqual({ [key]: [items[0]], tools: [tool('secret')] });
  });

  test('an error response and a response to another id go through byte for byte, unjudged', async () => {
    const visible = jest.fn(() => false);
    const error = '{ "jsonrpc" : "2.0", "id": 7,\n "error": {"code": -32601, "message": "Method not found"} }';
    const other = `  ${toolsResult(8, ['get-env'])}\n`;
    for (const body of [error, other]) {
      const h = await runChunks(filter('application/json', spec({ visible })), [body]);
      expect(h.error()).toBeUndefined();
      expect(h.text()).toBe(body);
    }
    expect(visible).not.toHaveBeenCalled();
  });

  test('items that are not objects are dropped without asking the policy', async () => {
    const seen: unknown[] = [];
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, result: { tools: [null, 1, 'echo', ['echo'], tool('echo'), true] } });
    const h = await runChunks(
      filter(
        'application/json',
        spec({
          visible: (i) => {
            seen.push(i);
            return true;
          },
        }),
      ),
      [body],
    );
    expect(JSON.parse(h.text()).result.tools).toEqual([tool('echo')]);
    expect(seen).toEqual([tool('echo')]);
  });

  test('only a visibility answer of true keeps an item', async () => {
    const body = toolsResult(7, ['a', 'b', 'c']);
    const answers: Record<string, unknown> = { a: true, b: 1, c: 'yes' };
    const h = await runChunks(filter('application/json', spec({ visible: (i) => answers[i.name as string] as boolean })), [body]);
    expect(JSON.parse(h.text()).result.tools.map((t: { name: string }) => t.name)).toEqual(['a']);
  });

  test('ids are matched as the SDK client matches them (Number(id)), and a batch is filtered element by element', async () => {
    for (const id of ['7', '07', 7]) {
      const h = await runChunks(filter('application/json'), [toolsResult(id, ['echo', 'get-env'])]);
      expect({ id, tools: JSON.parse(h.text()).result.tools.map((t: { name: string }) => t.name) }).toEqual({ id, tools: ['echo'] });
    }
    const batch = `[${toolsResult(7, ['get-env', 'echo'])},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}]`;
    const h = await runChunks(filter('application/json'), [batch]);
    const out = JSON.parse(h.text());
    expect(out[0].result.tools).toEqual([tool('echo')]);
    expect(out[1]).toEqual({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } });
  });

  test('a string request id matches only itself', async () => {
    const h = await runChunks(filter('application/json', spec({ requestId: 'abc' })), [toolsResult('ABC', ['get-env'])]);
    expect(JSON.parse(h.text()).result.tools).toEqual([tool('get-env')]);
  });

  test('a body over 16 MiB errors the stream and nothing is emitted', async () => {
    const h = harness(filter('application/json'));
    const head = Buffer.from(`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"get-env","description":"`);
    await h.write(head);
    await h.write(Buffer.alloc(LIST_FILTER_MAX_BYTES - head.length, 'a'));
    expect(h.error()).toBeUndefined();
    await h.write('"}]}}');
    await h.end();
    expect(h.error()).toBeInstanceOf(ListFilterError);
    expect((h.error() as ListFilterError).code).toBe('mcp_list_too_large');
    expect(h.bytes().length).toBe(0);
  });

  test('a body of exactly 16 MiB is still judged', async () => {
    const head = `{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo"},{"name":"get-env"}],"pad":"`;
    const body = Buffer.alloc(LIST_FILTER_MAX_BYTES, 'a');
    body.write(head);
    body.write('"}}', LIST_FILTER_MAX_BYTES - 3);
    const h = await runChunks(filter('application/json'), [body]);
    expect(h.error()).toBeUndefined();
    expect(JSON.parse(h.text()).result.tools).toEqual([{ name: 'echo' }]);
  });

  test.each([
    ['truncated', '{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"get-env"}'],
    ['trailing garbage', `${toolsResult(7, ['get-env'])}x`],
    ['not JSON at all', 'Internal Server Error'],
  ])('a malformed body (%s) errors the stream and nothing is emitted', async (_what, body) => {
    const h = await runChunks(filter('application/json'), [body]);
    expect((h.error() as ListFilterError).code).toBe('mcp_list_invalid_json');
    expect(h.bytes().length).toBe(0);
  });

  test('a leading BOM is ignored as fetch().json() ignores it, so the list is still filtered', async () => {
    const h = await runChunks(filter('application/json'), [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(toolsResult(7, ['get-env', 'echo']))])]);
    expect(JSON.parse(h.text()).result.tools).toEqual([tool('echo')]);
  });

  test('an empty body passes through empty', async () => {
    const h = await runChunks(filter('application/json'), []);
    expect(h.error()).toBeUndefined();
    expect(h.bytes().length).toBe(0);
  });

  test('a visibility function that throws errors the stream; nothing is emitted', async () => {
    const visible = () => {
      throw new Error('policy engine gone');
    };
    const h = await runChunks(filter('application/json', spec({ visible })), [toolsResult(7, ['echo'])]);
    expect((h.error() as ListFilterError).code).toBe('mcp_list_filter_failed');
    expect(h.error()?.message).toContain('policy engine gone');
    expect(h.bytes().length).toBe(0);
  });

  test('hiding every tool leaves an empty list, and onFiltered hears of it', async () => {
    const seen: Array<[number, number]> = [];
    const h = await runChunks(filter('application/json', spec({ visible: () => false, onFiltered: (r, k) => seen.push([r, k]) })), [
      toolsResult(7, ['a', 'b', 'c']),
    ]);
    expect(JSON.parse(h.text())).toEqual({ jsonrpc: '2.0', id: 7, result: { tools: [] } });
    expect(seen).toEqual([[3, 0]]);
  });
});

describe('content types and the spec', () => {
  test.each([
    ['application/json', 'json'],
    ['Application/JSON; charset=utf-8', 'json'],
    [' application/json ;charset=UTF-8', 'json'],
    ['text/event-stream', 'sse'],
    ['TEXT/Event-Stream; charset=utf-8', 'sse'],
    ['text/plain', null],
    ['application/json-seq', null],
    ['text/plain; a=application/json', null],
    ['', null],
    [undefined, null],
  ])('%p → %p', async (contentType, kind) => {
    const t = createListFilter(contentType, spec());
    if (kind === null) return expect(t).toBeNull();
    // Tell the two apart by what they do with an SSE event.
    const event = `data: ${toolsResult(7, ['get-env'])}\n\n`;
    const h = await runChunks(t as Transform, [event]);
    if (kind === 'sse') expect(h.text()).toBe(`data: ${toolsResult(7, [])}\n\n`);
    else expect((h.error() as ListFilterError).code).toBe('mcp_list_invalid_json');
  });

  test('a malformed spec is refused when the filter is built', () => {
    expect(() => createListFilter('application/json', spec({ method: 'tools/call' as ListMethod }))).toThrow(TypeError);
    expect(() => createListFilter('application/json', spec({ method: 'toString' as ListMethod }))).toThrow(TypeError);
    expect(() => createListFilter('application/json', spec({ requestId: null as unknown as number }))).toThrow(TypeError);
    expect(() => createListFilter('application/json', spec({ requestId: Number.NaN }))).toThrow(TypeError);
    expect(() => createListFilter('application/json', spec({ visible: undefined as never }))).toThrow(TypeError);
    expect(() => createListFilter('application/json', spec({ onFiltered: 'log' as never }))).toThrow(TypeError);
  });
});

describe('SSE streams', () => {
  const progress = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":50,"total":100}}';
  const response = toolsResult(7, ['echo', 'get-env', 'get-sum', 'delete-everything'], { nextCursor: 'c2' });
  const filtered = toolsResult(7, ['echo', 'get-sum'], { nextCursor: 'c2' });
  // What the SDK server sends, with CRLF line ends, a comment, retry:, id: and event: fields,
  // and the response's data split over two data: lines (allowed, and joined with "\n").
  const [respHead, respTail] = [response.slice(0, response.indexOf('"result"')), response.slice(response.indexOf('"result"'))];
  const stream =
    ': stream opened\r\n' +
    'retry: 1000\r\n' +
    'id: ev-1\r\n' +
    '\r\n' +
    `event: message\r\nid: ev-2\r\ndata: ${progress}\r\n\r\n` +
    `event: message\r\nid: ev-3\r\ndata: ${respHead}\r\ndata: ${respTail}\r\nretry: 500\r\n\r\n`;
  const expected =
    ': stream opened\r\nretry: 1000\r\nid: ev-1\r\n\r\n' +
    `event: message\r\nid: ev-2\r\ndata: ${progress}\r\n\r\n` +
    `event: message\r\nid: ev-3\r\ndata: ${filtered}\r\nretry: 500\r\n\r\n`;

  test('split at every byte boundary, the output is the same: only the response data is rewritten', async () => {
    const bytes = Buffer.from(stream);
    for (let cut = 1; cut < bytes.length; cut++) {
      const h = await runChunks(filter('text/event-stream'), [bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect({ cut, out: h.text() }).toEqual({ cut, out: expected });
    }
  });

  test('fed one byte at a time, the progress notification is out before the response arrives', async () => {
    const bytes = Buffer.from(stream);
    const h = harness(filter('text/event-stream'));
    const progressEnd = stream.indexOf(`${progress}\r\n\r\n`) + progress.length + 3; // up to the blank line's CR
    const responseStart = stream.indexOf('event: message\r\nid: ev-3');
    for (let i = 0; i < bytes.length; i++) {
      await h.write(bytes.subarray(i, i + 1));
      if (i + 1 === progressEnd) expect(h.text()).toContain(`data: ${progress}\r\n\r`);
      if (i + 1 === responseStart) expect(h.text()).toBe(expected.slice(0, responseStart));
      if (i + 1 < bytes.length - 1) expect(h.text()).not.toContain('ev-3');
    }
    await h.end();
    expect(h.text()).toBe(expected);
  });

  test('a data field split over lines is joined, parsed, and replaced by one data line; other lines stay in order', async () => {
    const lines = response.replace('"result":', '"result":\n');
    const multi = lines
      .split('\n')
      .map((l) => `data:${l}`)
      .join('\n');
    const event = `id: 9\n${multi.split('\n')[0]}\n: between\n${multi.split('\n')[1]}\nevent: message\n\n`;
    const h = await runChunks(filter('text/event-stream'), [event]);
    expect(h.text()).toBe(`id: 9\ndata: ${filtered}\n: between\nevent: message\n\n`);
  });

  test('CR-only line ends, a bare "data" field and a field without a space after the colon', async () => {
    const event = `data\rdata:${response}\r\r`;
    const h = await runChunks(filter('text/event-stream'), [event.slice(0, 5), event.slice(5)]);
    // The data is "\n" + the response, still JSON (leading white space): the two data lines become one.
    expect(h.text()).toBe(`data: ${filtered}\r\r`);
    const plain = `data:${response}\r\rdata:${progress}\r\r`;
    const h2 = await runChunks(filter('text/event-stream'), [plain]);
    expect(h2.text()).toBe(`data: ${filtered}\r\rdata:${progress}\r\r`);
  });

  test('events that are not the response go through byte for byte, and are not judged', async () => {
    const visible = jest.fn(() => false);
    const events = [
      `event: message\ndata: ${toolsResult(8, ['get-env'])}\n\n`,
      'data: {"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"boom"}}\n\n',
      'data: not json {"result": 1}\n\n',
      `data:   ${progress}  \n\n`,
      ':keep-alive\n\n',
      'id: 42\nretry: 10\n\n',
      '\n\n\n',
    ];
    const h = await runChunks(filter('text/event-stream', spec({ visible })), events);
    expect(h.error()).toBeUndefined();
    expect(h.text()).toBe(events.join(''));
    expect(visible).not.toHaveBeenCalled();
  });

  test('an event of any type is filtered, not only "message"', async () => {
    const h = await runChunks(filter('text/event-stream'), [`event: custom\ndata: ${response}\n\n`]);
    expect(h.text()).toBe(`event: custom\ndata: ${filtered}\n\n`);
  });

  test('a BOM at the start of the stream does not hide the first event from the filter', async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const body = Buffer.concat([bom, Buffer.from(`data: ${response}\n\n`)]);
    for (const cut of [1, 2, 3, 4, 10]) {
      const h = await runChunks(filter('text/event-stream'), [body.subarray(0, cut), body.subarray(cut)]);
      expect(h.bytes()).toEqual(Buffer.concat([bom, Buffer.from(`data: ${filtered}\n\n`)]));
    }
    // A BOM alone on the first line is a blank line: it ends an (empty) event and goes out at once.
    const h = harness(filter('text/event-stream'));
    await h.write(Buffer.concat([bom, Buffer.from('\n')]));
    expect(h.bytes()).toEqual(Buffer.concat([bom, Buffer.from('\n')]));
    await h.write(`data: ${response}\n\n`);
    await h.end();
    expect(h.bytes()).toEqual(Buffer.concat([bom, Buffer.from(`\ndata: ${filtered}\n\n`)]));
  });

  test('an event over 16 MiB errors the stream; events before it were already sent', async () => {
    const h = harness(filter('text/event-stream'));
    await h.write(`data: ${progress}\n\n`);
    await h.write('data: {"pad":"');
    await h.write(Buffer.alloc(LIST_FILTER_MAX_BYTES, 'a'));
    await h.end();
    expect((h.error() as ListFilterError).code).toBe('mcp_list_too_large');
    expect(h.text()).toBe(`data: ${progress}\n\n`);
  });

  test('an oversized event that arrives in one chunk with its blank line also errors', async () => {
    const h = await runChunks(filter('text/event-stream'), [`data: "${'a'.repeat(LIST_FILTER_MAX_BYTES)}"\n\n`]);
    expect((h.error() as ListFilterError).code).toBe('mcp_list_too_large');
    expect(h.bytes().length).toBe(0);
  });

  test('an unfinished event at stream end goes out as received, unless it is the unfiltered response', async () => {
    const tail = `id: 5\ndata: ${progress}`;
    const h = await runChunks(filter('text/event-stream'), [`data: ${progress}\n\n`, tail]);
    expect(h.text()).toBe(`data: ${progress}\n\n${tail}`);
    const h2 = await runChunks(filter('text/event-stream'), [`id: 6\ndata: ${response}\n`]);
    expect(h2.text()).toBe(`id: 6\ndata: ${filtered}\n`);
    const h3 = await runChunks(filter('text/event-stream'), [`id: 6\ndata: ${response}`]);
    expect(h3.text()).toBe(`id: 6\ndata: ${filtered}`);
  });

  test('a visibility function that throws errors the stream before the response goes out', async () => {
    const visible = () => {
      throw new Error('no policy');
    };
    const h = await runChunks(filter('text/event-stream', spec({ visible })), [`data: ${progress}\n\n`, `data: ${response}\n\n`]);
    expect((h.error() as ListFilterError).code).toBe('mcp_list_filter_failed');
    expect(h.text()).toBe(`data: ${progress}\n\n`);
  });

  test('a response whose member names are escaped is still found and filtered', async () => {
    const escaped = response.replace('"result"', '"res\\u0075lt"').replace('"tools"', '"t\\u006fols"');
    const h = await runChunks(filter('text/event-stream'), [`data: ${escaped}\n\n`]);
    expect(h.text()).toBe(`data: ${filtered}\n\n`);
  });
});

/** The exact bytes the sinks send: RFC 5424 header, octet counting, HEC and webhook bodies. */
import { hecBody } from '../../src/audit/sinks/splunk-hec-sink';
import { parseRecordLine, SinkError } from '../../src/audit/sinks/record-sink';
import { formatSyslogMessage, frameOctetCounted, headerField, severityOf, syslogHeader } from '../../src/audit/sinks/syslog-format';
import { webhookBody } from '../../src/audit/sinks/webhook-sink';

const header = syslogHeader({ facility: 13, hostname: 'gw-1', appName: 'portcullis', procId: '4242', bom: false });
const deny = '{"seq":7,"prev":"ab","type":"decision","time":"2026-01-02T03:04:05.678Z","decision":"deny","path":"/up/é"}';
const allow = '{"seq":8,"prev":"cd","type":"decision","time":"2026-01-02T03:04:06.000Z","decision":"allow"}';

test('an RFC 5424 message: PRI, version, record time, host, app, pid, record type as MSGID, no SD, the line as MSG', () => {
  const msg = formatSyslogMessage(deny, parseRecordLine(deny), header);
  // facility 13 × 8 + warning 4 = 108
  expect(msg.toString('utf8')).toBe(`<108>1 2026-01-02T03:04:05.678Z gw-1 portcullis 4242 decision - ${deny}`);
  expect(formatSyslogMessage(allow, parseRecordLine(allow), header).toString('utf8')).toMatch(/^<110>1 /);
});

test('severity: deny warning, failures err, the rest info', () => {
  expect(severityOf(parseRecordLine(deny))).toBe(4);
  expect(severityOf(parseRecordLine(allow))).toBe(6);
  expect(severityOf({ seq: 1, type: 'policy_rejected' })).toBe(3);
  expect(severityOf({ seq: 1, type: 'audit_recovered' })).toBe(3);
  expect(severityOf({ seq: 1, type: 'outcome' })).toBe(6);
  expect(severityOf({ seq: 1, type: 'some_future_type' })).toBe(6);
});

test('octet counting counts bytes, not characters', () => {
  const msg = formatSyslogMessage(deny, parseRecordLine(deny), header);
  const framed = frameOctetCounted(msg);
  const space = framed.indexOf(0x20);
  expect(Number(framed.subarray(0, space).toString())).toBe(msg.length);
  expect(msg.length).toBe(Buffer.byteLength(msg.toString('utf8')));
  expect(msg.length).toBeGreaterThan(msg.toString('utf8').length); // é is two bytes
  expect(framed.subarray(space + 1).equals(msg)).toBe(true);
});

test('BOM only when asked; header fields cleaned to printable ASCII; a bad time is NILVALUE', () => {
  const withBom = formatSyslogMessage(allow, parseRecordLine(allow), syslogHeader({ facility: 4, hostname: 'h', appName: 'a', procId: '1', bom: true }));
  const at = withBom.indexOf(Buffer.from('{"seq"'));
  expect([...withBom.subarray(at - 3, at)]).toEqual([0xef, 0xbb, 0xbf]);
  expect(withBom.toString('utf8')).toMatch(/^<38>1 /);
  expect(headerField('my host\n', 255)).toBe('myhost');
  expect(headerField('', 48)).toBe('-');
  expect(headerField('x'.repeat(60), 48)).toHaveLength(48);
  const odd = '{"seq":9,"type":"gateway_start","time":"yesterday"}';
  expect(formatSyslogMessage(odd, parseRecordLine(odd), header).toString()).toBe(`<110>1 - gw-1 portcullis 4242 gateway_start - ${odd}`);
  expect(() => syslogHeader({ facility: 24, hostname: 'h', appName: 'a', procId: '1', bom: false })).toThrow(/facility/);
});

test('HEC body: one event object per record, epoch-seconds time, the record verbatim as event', () => {
  const body = hecBody([deny, allow], { host: 'gw-1', source: 'portcullis', sourcetype: 'portcullis:audit', index: 'sec' });
  const lines = body.trimEnd().split('\n');
  expect(lines).toHaveLength(2);
  expect(lines[0]).toBe(`{"time":1767323045.678,"host":"gw-1","source":"portcullis","sourcetype":"portcullis:audit","index":"sec","event":${deny}}`);
  expect(JSON.parse(lines[1])).toEqual({
    time: 1767323046,
    host: 'gw-1',
    source: 'portcullis',
    sourcetype: 'portcullis:audit',
    index: 'sec',
    event: JSON.parse(allow),
  });
  expect(hecBody([allow], { host: 'h', source: 's', sourcetype: 't', index: null })).not.toContain('"index"');
});

test('webhook bodies embed the lines verbatim', () => {
  expect(webhookBody([deny, allow], 'json')).toBe(`{"records":[${deny},${allow}]}`);
  expect(JSON.parse(webhookBody([deny, allow], 'json')).records.map((r: { seq: number }) => r.seq)).toEqual([7, 8]);
  expect(webhookBody([deny, allow], 'ndjson')).toBe(`${deny}\n${allow}\n`);
});

test('a line that is not a record is refused, not sent', () => {
  expect(() => parseRecordLine('not json')).toThrow(SinkError);
  expect(() => parseRecordLine('{"type":"x"}')).toThrow(/seq/);
  expect(() => parseRecordLine('[1]')).toThrow(SinkError);
});

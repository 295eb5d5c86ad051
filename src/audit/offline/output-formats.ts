/**
 * How query results are printed: JSON Lines (the record's own line, byte for byte), CSV (RFC 4180,
 * with spreadsheet formula injection neutralised) and an aligned table for terminals (control
 * characters replaced, wide columns truncated). Records are flattened to one row shape so CSV
 * and table agree; fields a record type lacks stay empty.
 */
import type { QueryHit } from './query';

/** The CSV columns, in order (also the row shape of the table). */
export const ROW_COLUMNS = [
  'seq',
  'time',
  'type',
  'decision_id',
  'agent',
  'route',
  'method',
  'path',
  'tool',
  'decision',
  'code',
  'reasons',
  'status',
  'latency_ms',
  'policy_revision',
  'credential',
] as const;

/** A column name. */
export type RowColumn = (typeof ROW_COLUMNS)[number];

/** A flattened record: strings from the record, numbers we computed or copied. */
export type Row = Record<RowColumn, string | number | null>;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Flattens a hit: a decision carries its joined outcome's status and latency. */
export function toRow(hit: QueryHit): Row {
  const r = hit.record;
  const o = hit.outcome;
  const mcp = r.mcp as { tool?: unknown } | undefined;
  return {
    seq: num(r.seq),
    time: str(r.time),
    type: str(r.type),
    decision_id: str(r.decision_id),
    agent: str(r.agent),
    route: str(r.route),
    method: str(r.method),
    path: str(r.path),
    tool: mcp ? str(mcp.tool) : null,
    decision: str(r.decision),
    code: str(r.code) ?? o?.code ?? null,
    reasons: Array.isArray(r.reasons) ? r.reasons.filter((x) => typeof x === 'string').join('; ') : null,
    status: num(r.status) ?? o?.status ?? null,
    latency_ms: num(r.latency_ms) ?? o?.latency_ms ?? null,
    policy_revision: str(r.policy_revision),
    credential: str(r.credential),
  };
}

/** JSON Lines: the record's line exactly as in the trail, or with `outcome` added when joined. */
export function jsonLine(hit: QueryHit): string {
  return hit.outcome ? JSON.stringify({ ...hit.record, outcome: hit.outcome }) : hit.source.text;
}

/**
 * Spreadsheet formula injection (CWE-1236): a cell starting with `=`, `+`, `-`, `@`, a tab or a
 * carriage return is taken as a formula by Excel, LibreOffice and Google Sheets. Audit fields are
 * partly attacker-chosen (paths, policy reasons echoing input, agent ids may start with `@` or
 * `-`), so such a value gets a leading `'`, which spreadsheets show as text. Applied to text
 * fields only; numbers are written as numbers.
 */
export function neutraliseFormula(value: string): string {
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  if (typeof v === 'number') return String(v);
  const safe = neutraliseFormula(v);
  return /[",\r\n]/.test(safe) || safe !== v ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** The CSV header line (RFC 4180: CRLF line ends). */
export function csvHeader(): string {
  return `${ROW_COLUMNS.join(',')}\r\n`;
}

/** One CSV record. */
export function csvLine(row: Row): string {
  return `${ROW_COLUMNS.map((c) => csvCell(row[c])).join(',')}\r\n`;
}

interface TableColumn {
  readonly title: string;
  readonly width: number;
  readonly right?: boolean;
  readonly value: (row: Row) => string | number | null;
}

const TABLE: readonly TableColumn[] = [
  { title: 'TIME', width: 24, value: (r) => r.time },
  { title: 'SEQ', width: 8, right: true, value: (r) => r.seq },
  { title: 'AGENT', width: 16, value: (r) => r.agent },
  { title: 'ROUTE', width: 12, value: (r) => r.route },
  { title: 'METHOD', width: 7, value: (r) => r.method },
  { title: 'PATH', width: 32, value: (r) => (r.tool ? `${r.path ?? ''} [${r.tool}]` : r.path) },
  { title: 'DECISION', width: 8, value: (r) => r.decision ?? r.type },
  { title: 'REASON', width: 32, value: (r) => (r.code && r.reasons ? `${r.code}: ${r.reasons}` : (r.code ?? r.reasons)) },
  // Which credential an allowed call got, and which policy decided it: the auditor's questions.
  { title: 'CREDENTIAL', width: 12, value: (r) => r.credential },
  { title: 'POLICY', width: 19, value: (r) => r.policy_revision },
  { title: 'DECISION_ID', width: 36, value: (r) => r.decision_id },
];

const OUTCOME_COLUMNS: readonly TableColumn[] = [
  { title: 'STATUS', width: 6, right: true, value: (r) => r.status },
  { title: 'MS', width: 7, right: true, value: (r) => r.latency_ms },
];

/** Control characters (C0, DEL, C1) and bidi overrides could rewrite the terminal; show them as `?`. */
function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '?');
}

function cell(col: TableColumn, row: Row | null): string {
  const raw = row === null ? col.title : col.value(row);
  let text = raw === null || raw === undefined ? '' : printable(String(raw));
  if (text.length > col.width) text = `${text.slice(0, col.width - 1)}…`;
  return col.right ? text.padStart(col.width) : text.padEnd(col.width);
}

function tableColumns(withOutcome: boolean): readonly TableColumn[] {
  return withOutcome ? [...TABLE.slice(0, 7), ...OUTCOME_COLUMNS, ...TABLE.slice(7)] : TABLE;
}

/** The table's header line. */
export function tableHeader(withOutcome: boolean): string {
  return `${tableColumns(withOutcome)
    .map((c) => cell(c, null))
    .join('  ')
    .trimEnd()}\n`;
}

/** One table line. */
export function tableLine(row: Row, withOutcome: boolean): string {
  return `${tableColumns(withOutcome)
    .map((c) => cell(c, row))
    .join('  ')
    .trimEnd()}\n`;
}

/**
 * `portcullis audit query` and `portcullis audit export`: option parsing, help texts and exit
 * codes. The work is in src/audit/offline/query.ts and src/audit/offline/export.ts. Each command reports its own
 * usage errors (exit 2), so main.ts only dispatches to it; unknown options are caught by parseCommand.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { EXPORT_FORMATS, runExport, type ExportFormat } from '../audit/offline/export';
import { OCSF_VERSION } from '../audit/offline/export-ocsf';
import { csvHeader, csvLine, jsonLine, tableHeader, tableLine, toRow } from '../audit/offline/output-formats';
import { QueryOptionError, parseTimeBound, runQuery, type AuditFilter, type QueryStats } from '../audit/offline/query';
import { EXIT } from './exit-codes';
import { OutputClosed, BufferedOutput } from './buffered-output';
import { parseCommand, UsageError } from './parse-command';

const FILTER_HELP = `Filters (all given must match; repeat --agent/--route/--tool/--type for any of several values):
      --since TIME        from this time, inclusive: ISO 8601 (2026-05-01, 2026-05-01T12:00:00Z)
                          or a span before now (30m, 24h, 7d, 2w)
      --until TIME        up to this time, exclusive (same forms)
      --agent ID          the agent's id
      --route NAME        the route's name
      --tool NAME         the MCP tool (decision records that carry mcp.tool)
      --decision D        allow or deny
      --reason TEXT       a reason or the error code contains TEXT (case-insensitive)
      --decision-id ID    one call: its decision and its outcome record`;

/** Help texts, merged into the CLI's HELP map. */
export const AUDIT_HELP: Record<string, string> = {
  'audit query': `Usage: portcullis audit query PATH [filters] [--format jsonl|table|csv] [--with-outcome] [--limit N]

Prints the records of an audit trail (a directory of segments, or one segment) that match the
filters, in trail order. Reads the files directly: no gateway needs to run.

${FILTER_HELP}
      --type TYPE         record type: decision (default), outcome, gateway_start, ... or all

Output:
      --format F          jsonl (the records' own lines; default when not a terminal),
                          table (default on a terminal), csv (RFC 4180; a text value starting
                          with = + - @ tab or CR gets a leading ' so spreadsheets do not run it)
      --with-outcome      add each allowed decision's outcome (upstream status, latency)
      --limit N           stop after N records
Exit code 0 (also when nothing matches), 2 on a usage error.`,
  'audit export': `Usage: portcullis audit export PATH --format ocsf|ecs|csv [filters] [--output FILE] [--limit N]

Exports decision records for a SIEM, one event per line, with each allowed call's outcome:
  ocsf   OCSF ${OCSF_VERSION} API Activity (class 6003) with the security_control profile (action
         Allowed/Denied, policy revision) and an attestation chaining the exported events;
         raw_data_hash and unmapped.portcullis (seq, prev, segment, line) lead back to the trail
  ecs    Elastic Common Schema (event.category api, event.type allowed/denied, rule.*, user.*)
  csv    the columns of 'audit query --format csv'

${FILTER_HELP}
      --type TYPE         csv only: other record types (as in 'audit query'); ocsf and ecs
                          map decision records

Output:
  -o, --output FILE       write here instead of standard output
      --raw               ocsf: include each record's line as raw_data
      --limit N           stop after N records
Exit code 0 (also when nothing matches), 2 on a usage error.`,
};

const filterOptions = {
  since: { type: 'string' },
  until: { type: 'string' },
  agent: { type: 'string', multiple: true },
  route: { type: 'string', multiple: true },
  tool: { type: 'string', multiple: true },
  decision: { type: 'string' },
  reason: { type: 'string' },
  'decision-id': { type: 'string' },
  limit: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type FilterValues = {
  since?: string;
  until?: string;
  agent?: string[];
  route?: string[];
  tool?: string[];
  decision?: string;
  reason?: string;
  'decision-id'?: string;
  type?: string[];
};

/** The filter the options give (shared by `audit query`, `audit export` and `policy replay`). */
export function buildFilter(v: FilterValues, now: number): AuditFilter {
  if (v.decision !== undefined && v.decision !== 'allow' && v.decision !== 'deny')
    throw new QueryOptionError(`--decision must be allow or deny, not "${v.decision}"`);
  const since = v.since !== undefined ? parseTimeBound(v.since, now) : undefined;
  const until = v.until !== undefined ? parseTimeBound(v.until, now) : undefined;
  if (since !== undefined && until !== undefined && since >= until) throw new QueryOptionError('--since must be before --until');
  let types: AuditFilter['types'];
  if (v.type?.length) types = v.type.includes('all') ? 'all' : v.type;
  return {
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(types !== undefined ? { types } : {}),
    ...(v.agent ? { agents: v.agent } : {}),
    ...(v.route ? { routes: v.route } : {}),
    ...(v.tool ? { tools: v.tool } : {}),
    ...(v.decision ? { decision: v.decision as 'allow' | 'deny' } : {}),
    ...(v.reason !== undefined ? { reason: v.reason } : {}),
    ...(v['decision-id'] !== undefined ? { decisionId: v['decision-id'] } : {}),
  };
}

function parseLimit(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new QueryOptionError(`--limit must be a whole number, not "${value}"`);
  return Number(value);
}

function trailPath(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new QueryOptionError(`${command} takes one PATH (an audit directory or segment file)`);
  const target = path.resolve(positionals[0]);
  statSync(target); // a missing trail is reported before any output
  return target;
}

/** Runs a command body, turning its errors into the documented exit codes. */
function guarded(body: () => number): number {
  try {
    return body();
  } catch (err) {
    if (err instanceof OutputClosed) return EXIT.OK;
    const e = err as NodeJS.ErrnoException;
    if (e instanceof UsageError) {
      process.stderr.write(`portcullis: ${e.message}\nRun 'portcullis ${e.command} --help'.\n`);
      return EXIT.USAGE;
    }
    if (e instanceof QueryOptionError) {
      process.stderr.write(`portcullis: ${e.message}\nRun 'portcullis audit query --help' or 'portcullis audit export --help'.\n`);
      return EXIT.USAGE;
    }
    if (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'ENOTDIR') {
      process.stderr.write(`portcullis: cannot open ${e.path ?? 'the trail'}: ${e.code}\n`);
      return EXIT.USAGE;
    }
    throw err;
  }
}

function reportUnreadable(stats: QueryStats): void {
  if (stats.unreadable > 0)
    process.stderr.write(`portcullis: warning: ${stats.unreadable} line(s) are not JSON records and were skipped; run 'portcullis audit verify'\n`);
}

/** `portcullis audit query`. */
export function cmdAuditQuery(args: string[]): number {
  return guarded(() => {
    const { values, positionals } = parseCommand(
      'audit query',
      args,
      { ...filterOptions, type: { type: 'string', multiple: true }, format: { type: 'string' }, 'with-outcome': { type: 'boolean' } },
      1,
    );
    if (values.help) {
      process.stdout.write(`${AUDIT_HELP['audit query']}\n`);
      return EXIT.OK;
    }
    const target = trailPath(positionals, 'audit query');
    const format = values.format ?? (process.stdout.isTTY ? 'table' : 'jsonl');
    if (format !== 'jsonl' && format !== 'table' && format !== 'csv') throw new QueryOptionError(`--format must be jsonl, table or csv, not "${format}"`);
    const filter = buildFilter(values, Date.now());
    const limit = parseLimit(values.limit);
    const withOutcome = values['with-outcome'] === true;
    const out = BufferedOutput.stdout();
    try {
      if (format === 'table') out.write(tableHeader(withOutcome));
      if (format === 'csv') out.write(csvHeader());
      const stats = runQuery(target, filter, { limit, withOutcome }, (hit) => {
        if (format === 'jsonl') out.write(`${jsonLine(hit)}\n`);
        else if (format === 'csv') out.write(csvLine(toRow(hit)));
        else out.write(tableLine(toRow(hit), withOutcome));
      });
      out.close();
      if (format === 'table') process.stderr.write(`${stats.emitted} record${stats.emitted === 1 ? '' : 's'}\n`);
      reportUnreadable(stats);
    } catch (err) {
      if (!(err instanceof OutputClosed)) out.close();
      throw err;
    }
    return EXIT.OK;
  });
}

/** `portcullis audit export`. */
export function cmdAuditExport(args: string[]): number {
  return guarded(() => {
    const { values, positionals } = parseCommand(
      'audit export',
      args,
      {
        ...filterOptions,
        type: { type: 'string', multiple: true },
        format: { type: 'string' },
        output: { type: 'string', short: 'o' },
        raw: { type: 'boolean' },
      },
      1,
    );
    if (values.help) {
      process.stdout.write(`${AUDIT_HELP['audit export']}\n`);
      return EXIT.OK;
    }
    const target = trailPath(positionals, 'audit export');
    if (!values.format) throw new QueryOptionError(`audit export needs --format ${EXPORT_FORMATS.join('|')}`);
    if (!(EXPORT_FORMATS as readonly string[]).includes(values.format))
      throw new QueryOptionError(`--format must be ${EXPORT_FORMATS.join(', ')}, not "${values.format}"`);
    const filter = buildFilter(values, Date.now());
    const limit = parseLimit(values.limit);
    const out = values.output ? BufferedOutput.file(path.resolve(values.output)) : BufferedOutput.stdout();
    try {
      const stats = runExport(target, { format: values.format as ExportFormat, filter, limit, rawData: values.raw === true, write: (t) => out.write(t) });
      out.close();
      if (values.output) process.stderr.write(`exported ${stats.emitted} record${stats.emitted === 1 ? '' : 's'} to ${values.output}\n`);
      reportUnreadable(stats);
    } catch (err) {
      if (!(err instanceof OutputClosed)) out.close();
      throw err;
    }
    return EXIT.OK;
  });
}

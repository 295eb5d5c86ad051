/**
 * `portcullis audit export`: selected decision records as SIEM events, one JSON object per line
 * (OCSF or ECS), or as CSV. Uses the query scan (same filters, same order) with the outcome join,
 * so an allowed call's event carries the upstream status.
 */
import { randomUUID } from 'node:crypto';
import { csvHeader, csvLine, toRow } from './output-formats';
import { toEcs } from './export-ecs';
import { toOcsf, type OcsfChain } from './export-ocsf';
import { QueryOptionError, runQuery, type AuditFilter, type QueryStats } from './query';

/** Export formats. */
export const EXPORT_FORMATS = ['ocsf', 'ecs', 'csv'] as const;
/** An export format. */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Options of runExport. */
export interface ExportOptions {
  readonly format: ExportFormat;
  readonly filter: AuditFilter;
  readonly limit?: number;
  /** OCSF: include each record's line as `raw_data`. */
  readonly rawData?: boolean;
  /** Receives the output, in order. */
  readonly write: (chunk: string) => void;
}

/** Exports a trail; returns the scan's counters. */
export function runExport(target: string, options: ExportOptions): QueryStats {
  const { format, filter } = options;
  if (format !== 'csv' && filter.types !== undefined && (filter.types === 'all' || filter.types.some((t) => t !== 'decision'))) {
    throw new QueryOptionError(`--format ${format} maps decision records only; use --format csv or 'audit query' for other record types`);
  }
  const effective: AuditFilter = format === 'csv' ? filter : { ...filter, types: ['decision'] };
  const chain: OcsfChain = { uid: `urn:uuid:${randomUUID()}`, prev: null };
  if (format === 'csv') options.write(csvHeader());
  return runQuery(
    target,
    effective,
    {
      limit: options.limit,
      withOutcome: true,
      contextTypes: ['gateway_start'],
    },
    (hit) => {
      // The version of the gateway that wrote the record: its latest gateway_start.
      const productVersion = typeof hit.context?.version === 'string' ? hit.context.version : null;
      if (format === 'csv') options.write(csvLine(toRow(hit)));
      else if (format === 'ecs') options.write(`${JSON.stringify(toEcs(hit, productVersion))}\n`);
      else options.write(`${JSON.stringify(toOcsf(hit, { productVersion, rawData: options.rawData === true, chain }))}\n`);
    },
  );
}

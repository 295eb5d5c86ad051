/**
 * The `portcullis` command line: start the gateway, build, test and evaluate policies.
 * Exit codes are in exit-codes.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateSignerKey, parseSignerKey } from '../audit/signed-note';
import { verifyTrail, type VerifyReport } from '../audit/offline/verify';
import { loadConfig } from '../config/load';
import type { GatewayConfig } from '../config/types';
import { ConfigError, PolicyBuildError } from '../errors';
import { compilePolicy, opaBinary } from '../policy/bundle';
import { FAIL_ON, type FailOn } from '../policy/replay/report';
import { buildFilter, cmdAuditExport, cmdAuditQuery } from './audit-commands';
import { EXIT } from './exit-codes';
import { COMMANDS, parseCommand, unknownCommand, UsageError } from './parse-command';

const HELP: Record<string, string> = {
  main: `portcullis — a policy-enforcing gateway between AI agents and the systems they act on

Usage: portcullis <command> [options]

Commands:
  start                 run the gateway
  policy build          compile a policy directory to a Wasm bundle
  policy test           run the policy's Rego tests (opa test)
  policy eval           print the decision the gateway would make for an input
  policy replay         judge a candidate policy on an audit trail's recorded decisions
  audit verify          check an audit trail offline: chain, segments, signed checkpoints
  audit keygen          make a checkpoint signing key
  audit query           select audit records (time, agent, route, decision...) as JSONL, table or CSV
  audit export          export decisions for a SIEM: OCSF, ECS or CSV
  audit serve           the auditor's view of a trail in a browser: verdict, timeline, denies, credentials

Run 'portcullis <command> --help' for a command's options.
Exit codes: 0 ok/allowed/verified, 1 denied/tests failed/tampered, 2 usage/unverifiable, 3 config error, 4 policy error, 5 runtime failure.`,
  start: `Usage: portcullis start [--config FILE]

Runs the gateway until SIGINT/SIGTERM, then drains in-flight calls and stops. SIGHUP, or a
change of the file, reloads the configuration without a restart (a bad one is refused, and the
running one stays).
  -c, --config FILE   configuration file (default: ./portcullis.yaml)`,
  'policy build': `Usage: portcullis policy build [--policy DIR [--entrypoint E] | --config FILE] [--output FILE]

Compiles the policy to Wasm with the OPA CLI and the engine's capabilities (so a builtin the
gateway cannot run fails here, naming it), and prints the revision. Without --output it only
checks: the bundle is built in a temporary directory, which is removed.
  -p, --policy DIR      policy directory (default: ./policies; also as the argument DIR)
  -e, --entrypoint E    entrypoint rule (default: portcullis/decision)
  -c, --config FILE     take policy.path and policy.entrypoint from this config
  -o, --output FILE     write the bundle here`,
  'policy test': `Usage: portcullis policy test [--policy DIR | --config FILE] [-- OPA_TEST_ARGS...]

Runs the policy's Rego tests with the OPA CLI ('opa test', verbose); arguments after '--' go to it.
  -p, --policy DIR      policy directory (default: ./policies; also as the argument DIR)
  -c, --config FILE     take policy.path from this config`,
  'audit verify': `Usage: portcullis audit verify PATH [--key KEY]... [--checkpoint FILE]... [--json]

Checks an audit trail offline (a directory of segments, or one segment) with only the files and
the public key: every record present, in order and unmodified (seq without gaps, each prev the
SHA-256 of the previous line), segments complete and in order, and every signed checkpoint
valid and matching the records before it.
  -k, --key KEY          a trusted public key: the text from audit.pub (name+id+key), or a file
                         holding such lines. Repeat for keys rotated over the trail's life.
                         Without it the audit.pub beside the trail is trusted, and said so.
      --checkpoint FILE  a checkpoint kept elsewhere (a copy of the trail's checkpoint file):
                         a trail holding fewer records, or other ones, was truncated or rolled back.
      --json             print the report as JSON
Exit code 0 verified, 1 tampered (each problem printed with file, line and seq), 2 unverifiable
(records after the last signed checkpoint, no key) or bad usage.`,
  'audit serve': `Usage: portcullis audit serve --trail DIR [--key KEY]... [--listen HOST:PORT] [--token-file FILE]

Verifies the trail with the same verifier as 'audit verify', then serves a read-only view of it
until SIGINT/SIGTERM: the verdict on every page, the timeline with filters, denies by reason and
tool, credentials, policy revisions, each decision's record and checkpoint, and exports.
  -t, --trail DIR         the audit directory (a copy is fine; nothing is written to or beside it)
  -k, --key KEY           a trusted public key (text or a file of such lines); repeatable
  -l, --listen HOST:PORT  where to listen (default 127.0.0.1:9191; port 0 picks one)
  --token-file FILE       a token the browser must present (required off loopback); open /login?token=…`,
  'audit keygen': `Usage: portcullis audit keygen --name NAME --output FILE

Writes a new Ed25519 checkpoint signing key to FILE (mode 0600; an existing file is never
overwritten) and prints its public key. Set audit.signing_key to { file: FILE } to use it.
      --name NAME       identifies the log in checkpoints, e.g. portcullis.example.com/prod-agents
  -o, --output FILE     where to write the key`,
  'policy eval': `Usage: portcullis policy eval --input FILE [--policy DIR [--entrypoint E] | --config FILE]

Compiles the policy exactly as the gateway does and prints the decision for the input (JSON,
the same shape as the gateway's policy input; '-' reads standard input).
Exit code 0 when allowed, 1 when denied.
  -i, --input FILE      the policy input
  -p, --policy DIR      policy directory or bundle (default: ./policies; also as the argument DIR)
  -e, --entrypoint E    entrypoint rule (default: portcullis/decision)
  -c, --config FILE     take policy.path and policy.entrypoint from this config`,
  'policy replay': `Usage: portcullis policy replay --trail AUDITDIR [--policy DIR|BUNDLE [--entrypoint E] | --config FILE]
       [--since T] [--until T] [--agent A] [--route R] [--tool T] [--format text|json]
       [--fail-on newly-allowed,newly-denied,undeterminable,any] [--examples N]

Compiles the candidate policy exactly as the gateway does and decides again every recorded
decision of the trail that reached a policy (it carries its input), then reports what would
change: calls newly denied, calls newly allowed, grouped by route, agent, tool and reason.
A record the candidate might decide on something that was not recorded (a REST body without
audit_body, a masked MCP argument) or with a non-deterministic builtin (time.now_ns...) is
undeterminable: reported with why, never counted as a flip.
  -t, --trail AUDITDIR  the audit trail (a directory of segments, or one segment); required
  -p, --policy DIR      the candidate: a policy directory or bundle (default: ./policies)
  -e, --entrypoint E    entrypoint rule (default: portcullis/decision)
  -c, --config FILE     take policy.path and policy.entrypoint from this config
      --since TIME      from this time, inclusive: ISO 8601 or a span before now (30m, 24h, 7d)
      --until TIME      up to this time, exclusive (same forms)
      --agent ID        the agent's id (repeatable)
      --route NAME      the route's name (repeatable)
      --tool NAME       the MCP tool (repeatable)
      --format F        text (default) or json
      --fail-on LIST    exit 1 when any of these happened: newly-allowed, newly-denied,
                        undeterminable, any (comma-separated or repeated; default: none)
      --examples N      example decision ids per group (default 3)
Exit code 0, or 1 when something --fail-on names happened; 2 usage, 4 the candidate does not compile.`,
};

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * The policy a `policy` command works on, given the same way to all three: -p DIR (or DIR as
 * the argument), or -c CONFIG for its policy.path and policy.entrypoint; one of them at most.
 */
function policySource(
  command: string,
  values: { config?: string; policy?: string; entrypoint?: string },
  positionals: string[],
): { path: string; entrypoint: string; opa: string | null } {
  if (values.policy !== undefined && positionals.length) throw new UsageError('give the policy directory once: --policy DIR or DIR', command);
  const dir = values.policy ?? positionals[0];
  if (values.config !== undefined) {
    if (dir !== undefined || values.entrypoint !== undefined)
      throw new UsageError('--config names the policy and its entrypoint: give it alone, or --policy DIR [--entrypoint E]', command);
    // Only the policy is needed: the credentials' secrets may be absent here (CI, a laptop).
    const config = loadConfig(values.config, { secrets: 'skip' });
    if (config.policy.bundle)
      throw new UsageError(`${values.config} pulls its policy from a bundle server (policy.bundle): give the policy's sources with --policy DIR`, command);
    return { path: config.policy.path, entrypoint: config.policy.entrypoint, opa: config.policy.opa };
  }
  return { path: path.resolve(dir ?? 'policies'), entrypoint: values.entrypoint ?? 'portcullis/decision', opa: null };
}

const helpOption = { help: { type: 'boolean', short: 'h' } } as const;
const policyOptions = {
  ...helpOption,
  config: { type: 'string', short: 'c' },
  policy: { type: 'string', short: 'p' },
  entrypoint: { type: 'string', short: 'e' },
} as const;

async function cmdStart(args: string[]): Promise<number> {
  const { values } = parseCommand('start', args, { ...helpOption, config: { type: 'string', short: 'c' } });
  if (values.help) return help('start');
  const config: GatewayConfig = loadConfig(values.config ?? 'portcullis.yaml');
  return runUntilSignal(config);
}

/** Starts a gateway and keeps it running until SIGINT/SIGTERM. */
export async function runUntilSignal(config: GatewayConfig, onStarted?: (url: string) => void): Promise<number> {
  // Loaded on demand: the audit commands should not pay for the gateway's modules at start-up.
  const { startGateway } = await import('../gateway');
  // Listen for the signal before starting: one that arrives while start-up finishes still
  // drains, records gateway_stop and releases the trail's lock.
  const signalled = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  // SIGHUP (and a change of the file) reloads the configuration without a restart; a bad one
  // is refused and logged, and the running one stays (README, Reload without restart).
  let reload: (() => void) | null = null;
  const hangup = () => reload?.();
  process.on('SIGHUP', hangup);
  try {
    const gateway = await startGateway(config, { watchConfig: true });
    reload = () => void gateway.reload();
    onStarted?.(gateway.url);
    await signalled;
    await gateway.close();
  } finally {
    process.off('SIGHUP', hangup);
  }
  return EXIT.OK;
}

async function cmdPolicyBuild(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand('policy build', args, { ...policyOptions, output: { type: 'string', short: 'o' } }, 1);
  if (values.help) return help('policy build');
  const src = policySource('policy build', values, positionals);
  // Without --output, compilePolicy builds in a temporary directory and removes it.
  const output = values.output === undefined ? undefined : path.resolve(values.output);
  const compiled = await compilePolicy({ ...src, output });
  for (const warning of compiled.warnings) process.stderr.write(`warning: ${warning} [PC_BUILTIN_DIFFERS]\n`);
  out(JSON.stringify({ ...(output ? { bundle: output } : {}), revision: compiled.revision, entrypoints: compiled.entrypoints, warnings: compiled.warnings }));
  return EXIT.OK;
}

async function cmdPolicyTest(args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  const own = dash === -1 ? args : args.slice(0, dash);
  const extra = dash === -1 ? [] : args.slice(dash + 1);
  const { values, positionals } = parseCommand('policy test', own, { ...helpOption, config: policyOptions.config, policy: policyOptions.policy }, 1);
  if (values.help) return help('policy test');
  const src = policySource('policy test', values, positionals);
  const dir = src.path;
  const opa = opaBinary(src.opa);
  return new Promise((resolve) => {
    const child = execFile(opa, ['test', '-v', ...extra, dir], { maxBuffer: 64 * 1024 * 1024 }, (err) => {
      if (err && typeof (err as { code?: unknown }).code === 'string') {
        process.stderr.write(`portcullis: cannot run the OPA CLI "${opa}": ${err.message}\n`);
        resolve(EXIT.RUNTIME);
      } else resolve(err ? EXIT.DENIED_OR_FAILED : EXIT.OK);
    });
    child.stdout?.pipe(process.stdout);
    child.stderr?.pipe(process.stderr);
  });
}

async function cmdPolicyEval(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand('policy eval', args, { ...policyOptions, input: { type: 'string', short: 'i' } }, 1);
  if (values.help) return help('policy eval');
  if (!values.input) throw new UsageError('policy eval needs --input FILE', 'policy eval');
  let input: unknown;
  try {
    input = JSON.parse(readFileSync(values.input === '-' ? 0 : values.input, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the input ${values.input}: ${(err as Error).message}`, 'policy eval');
  }
  const src = policySource('policy eval', values, positionals);
  const { WasmPolicyEngine } = await import('../policy/engine');
  const engine = await WasmPolicyEngine.create(await compilePolicy(src), src.entrypoint);
  const decision = engine.decide(input as never);
  out(
    JSON.stringify(
      {
        allow: decision.allow,
        reasons: decision.reasons,
        ...(decision.error ? { error: decision.error } : {}),
        ...(decision.extra ?? {}),
        policy_revision: engine.revision,
      },
      null,
      2,
    ),
  );
  return decision.allow ? EXIT.OK : EXIT.DENIED_OR_FAILED;
}

/** `portcullis policy replay` (src/policy/replay/). */
export async function cmdPolicyReplay(args: string[]): Promise<number> {
  const { values } = parseCommand('policy replay', args, {
    ...policyOptions,
    trail: { type: 'string', short: 't' },
    since: { type: 'string' },
    until: { type: 'string' },
    agent: { type: 'string', multiple: true },
    route: { type: 'string', multiple: true },
    tool: { type: 'string', multiple: true },
    format: { type: 'string' },
    'fail-on': { type: 'string', multiple: true },
    examples: { type: 'string' },
  });
  if (values.help) return help('policy replay');
  const command = 'policy replay';
  if (!values.trail) throw new UsageError('policy replay needs --trail AUDITDIR', command);
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--format must be text or json, not "${format}"`, command);
  const failOn = (values['fail-on'] ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  for (const f of failOn) if (!(FAIL_ON as readonly string[]).includes(f)) throw new UsageError(`--fail-on takes ${FAIL_ON.join(', ')}, not "${f}"`, command);
  const examples = values.examples ?? '3';
  if (!/^\d+$/.test(examples)) throw new UsageError(`--examples must be a whole number, not "${examples}"`, command);
  let filter: ReturnType<typeof buildFilter>;
  try {
    filter = buildFilter(values, Date.now());
  } catch (err) {
    throw new UsageError((err as Error).message, command);
  }
  const trail = path.resolve(values.trail);
  if (!existsSync(trail)) throw new UsageError(`cannot open the trail ${values.trail}: ENOENT`, command);
  const src = policySource(command, values, []);
  const { loadCandidate } = await import('../policy/replay/candidate');
  const { runReplay } = await import('../policy/replay/replay');
  const { buildReport, reportText, ReplayGroups } = await import('../policy/replay/report');
  const candidate = await loadCandidate(src);
  const groups = new ReplayGroups(Number(examples));
  const tty = process.stderr.isTTY === true;
  const result = runReplay(trail, filter, candidate, {
    onItem: (item) => groups.add(item),
    ...(tty
      ? {
          onProgress: (p) => {
            const rate = p.elapsedMs > 0 ? Math.round((p.records * 1000) / p.elapsedMs) : 0;
            const mib = (b: number) => (b / 1048576).toFixed(1);
            process.stderr.write(`\r\x1b[Kreplayed ${p.records} records (${rate}/s), ${mib(p.bytesDone)}/${mib(p.bytesTotal)} MiB`);
          },
        }
      : {}),
  });
  if (tty) process.stderr.write('\r\x1b[K');
  const report = buildReport({ candidatePath: src.path, entrypoint: src.entrypoint, candidate, trail, result, groups, failOn: failOn as FailOn[] });
  process.stdout.write(format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : reportText(report));
  return report.failed ? EXIT.DENIED_OR_FAILED : EXIT.OK;
}

function cmdAuditVerify(args: string[]): number {
  const { values, positionals } = parseCommand(
    'audit verify',
    args,
    { ...helpOption, key: { type: 'string', short: 'k', multiple: true }, checkpoint: { type: 'string', multiple: true }, json: { type: 'boolean' } },
    1,
  );
  if (values.help) return help('audit verify');
  if (positionals.length !== 1) throw new UsageError('audit verify takes one PATH', 'audit verify');
  const keys = trustedKeys(values.key);
  const checkpoints = (values.checkpoint ?? []).map((f): [string, string] => {
    try {
      return [path.resolve(f), readFileSync(f, 'utf8')];
    } catch (err) {
      throw new UsageError(`cannot read the checkpoint ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  });
  let report: VerifyReport;
  try {
    report = verifyTrail(path.resolve(positionals[0]), { keys, checkpoints });
  } catch (err) {
    throw new UsageError(`cannot verify ${positionals[0]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (values.json) out(JSON.stringify(report, null, 2));
  else {
    for (const p of report.problems) out(`TAMPERED ${p.file}${p.line ? `:${p.line}` : ''}${p.seq !== null ? ` (seq ${p.seq})` : ''}: ${p.problem}`);
    for (const u of report.unverifiable) out(`UNVERIFIABLE ${u}`);
    for (const w of report.warnings) out(`NOTE ${w}`);
    const summary = `${report.records} records in ${report.files.length} segment(s), last seq ${report.lastSeq}, ${report.checkpoints} signed checkpoint(s) covering seq 1..${report.coveredSeq}, key(s) ${report.keys.join(', ') || 'none'}`;
    out(
      `${report.verdict === 'verified' ? 'OK' : report.verdict === 'tampered' ? `FAILED (${report.problems.length} problem(s))` : 'UNVERIFIABLE'}: ${summary}`,
    );
  }
  return report.verdict === 'verified' ? EXIT.OK : report.verdict === 'tampered' ? EXIT.DENIED_OR_FAILED : EXIT.UNVERIFIABLE;
}

/** The trusted keys given with --key: each a key's text, or a file of such lines. */
function trustedKeys(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((k) =>
    existsSync(k)
      ? readFileSync(k, 'utf8')
          .split('\n')
          .filter((l) => l.trim())
      : [k],
  );
}

async function cmdAuditServe(args: string[]): Promise<number> {
  const { values } = parseCommand('audit serve', args, {
    ...helpOption,
    trail: { type: 'string', short: 't' },
    key: { type: 'string', short: 'k', multiple: true },
    listen: { type: 'string', short: 'l' },
    'token-file': { type: 'string' },
  });
  if (values.help) return help('audit serve');
  if (!values.trail) throw new UsageError('audit serve needs --trail DIR', 'audit serve');
  const m = /^(.*):(\d{1,5})$/.exec(values.listen ?? '127.0.0.1:9191');
  if (!m) throw new UsageError(`--listen must be HOST:PORT, not ${JSON.stringify(values.listen)}`, 'audit serve');
  let token: string | null = null;
  if (values['token-file']) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read the token file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'audit serve');
    }
    if (token.length < 16) throw new UsageError('the token must be at least 16 characters', 'audit serve');
  }
  const { serveTrail } = await import('../audit/viewer/server');
  const { QueryOptionError } = await import('../audit/offline/query');
  const signalled = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  process.stderr.write(`verifying ${values.trail} (the view shows the progress)…\n`);
  let server: Awaited<ReturnType<typeof serveTrail>>;
  try {
    server = await serveTrail({
      trail: path.resolve(values.trail),
      keys: trustedKeys(values.key),
      host: m[1].replace(/^\[|\]$/g, ''),
      port: Number(m[2]),
      token,
    });
  } catch (err) {
    if (err instanceof QueryOptionError) throw new UsageError(err.message, 'audit serve');
    throw new UsageError(`cannot serve ${values.trail}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'audit serve');
  }
  out(`serving the audit view at ${server.url}/`);
  server.ready.then(
    ({ report: r }) => process.stderr.write(`${r.verdict.toUpperCase()}: ${r.records} records, last seq ${r.lastSeq}\n`),
    (err: Error) => process.stderr.write(`portcullis: cannot open ${values.trail}: ${err.message}\n`),
  );
  await signalled;
  await server.close();
  return EXIT.OK;
}

function cmdAuditKeygen(args: string[]): number {
  const { values } = parseCommand('audit keygen', args, { ...helpOption, name: { type: 'string' }, output: { type: 'string', short: 'o' } });
  if (values.help) return help('audit keygen');
  if (!values.name || !values.output) throw new UsageError('audit keygen needs --name NAME and --output FILE', 'audit keygen');
  let key: string;
  try {
    key = generateSignerKey(values.name);
  } catch (err) {
    throw new UsageError((err as Error).message, 'audit keygen');
  }
  writeFileSync(values.output, `${key}\n`, { mode: 0o600, flag: 'wx' });
  out(parseSignerKey(key).verifierKey);
  return EXIT.OK;
}

function help(topic: string): number {
  out(HELP[topic]);
  return EXIT.OK;
}

/** Runs the CLI with the given arguments; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') return help('main');
    if (cmd === 'start') return await cmdStart(argv.slice(1));
    if (COMMANDS[cmd]?.length && (!sub || sub === '--help' || sub === '-h')) return help('main');
    if (cmd === 'policy') {
      if (sub === 'build') return await cmdPolicyBuild(rest);
      if (sub === 'test') return await cmdPolicyTest(rest);
      if (sub === 'eval') return await cmdPolicyEval(rest);
      if (sub === 'replay') return await cmdPolicyReplay(rest);
    }
    if (cmd === 'audit') {
      if (sub === 'verify') return cmdAuditVerify(rest);
      if (sub === 'keygen') return cmdAuditKeygen(rest);
      if (sub === 'query') return cmdAuditQuery(rest);
      if (sub === 'export') return cmdAuditExport(rest);
      if (sub === 'serve') return await cmdAuditServe(rest);
    }
    throw unknownCommand(argv);
  } catch (err) {
    const e = err as Error;
    if (e instanceof UsageError) {
      process.stderr.write(`portcullis: ${e.message}\nRun 'portcullis ${e.command ? `${e.command} ` : ''}--help'.\n`);
      return EXIT.USAGE;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`portcullis: invalid configuration: ${e.message}\n`);
      return EXIT.CONFIG;
    }
    if (e instanceof PolicyBuildError) {
      process.stderr.write(`portcullis: policy error: ${e.message}\n`);
      return EXIT.POLICY;
    }
    process.stderr.write(`portcullis: ${e.message}\n`);
    return EXIT.RUNTIME;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}

/**
 * `npm run conformance`: replays the OASIS XML test cases against kmipd and reports.
 *
 *   node dist/conformance/run.js [--filter GLOB ...] [--profile P] [--version V] [--verbose]
 *                                [--jobs N] [--timeout S] [--report FILE | --no-report]
 *                                [--host H --port N --ca F --cert F --key F [--cert-b F --key-b F]]
 *
 * Without --host it starts kmipd in process (a fresh data directory per test case). The table
 * goes to stdout and to conformance/REPORT.md; the last line is `N passed, M failed, K skipped`;
 * the exit status is 1 when any test case failed (2 on a usage or setup error).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { VERSION } from '../src/version.js';
import { renderMarkdown, renderText } from './report.js';
import { runConformance, type RunOptions } from './runner.js';
import { VERSIONS } from './sets.js';
import { ExternalTarget, orphanCrashes } from './target.js';

/** The repository root: the first folder upward holding kmipd's package.json (from src or dist). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'conformance'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

interface CliOptions {
  filter: string[];
  profile?: string;
  version?: string;
  verbose?: boolean;
  jobs: number;
  timeout: number;
  tolerance: number;
  report: string | false;
  vectors?: string;
  host?: string;
  port?: number;
  ca?: string;
  cert?: string;
  key?: string;
  certB?: string;
  keyB?: string;
  servername?: string;
}

export async function main(argv: string[]): Promise<number> {
  const root = repoRoot();
  const program = new Command('conformance')
    .description('Replays the OASIS KMIP XML test cases against kmipd and compares each response')
    .option('--filter <glob>', 'only test cases whose id, path or file name matches (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--profile <name>', 'only one profile: SKLC, SKFF, CS-BC, QUERY, … or part of its name')
    .option('--version <v>', `only one protocol version (${VERSIONS.join(', ')})`)
    .option('--verbose', 'print every test case, every difference and every variation applied')
    .option('--jobs <n>', 'test cases run at once', positiveInt, 4)
    .option('--timeout <s>', 'seconds to wait for each response', positiveInt, 10)
    .option('--tolerance <s>', 'seconds $NOW may be off the test case run time', positiveInt, 10)
    .option('--report <file>', 'where to write the Markdown report', join(root, 'conformance', 'REPORT.md'))
    .option('--no-report', 'write no report file')
    .option('--vectors <dir>', 'the test-vector folder (default $KMIP_VECTORS or ../shared/kmip-vectors)')
    .option('--host <host>', 'test another server instead of an in-process kmipd')
    .option('--port <n>', 'its port', positiveInt)
    .option('--ca <file>', "the server's CA certificate (PEM)")
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client key (PEM)')
    .option('--cert-b <file>', 'a second client certificate for Client-B and later of dual-client test cases')
    .option('--key-b <file>', 'its key')
    .option('--servername <name>', 'TLS server name to verify')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  try {
    program.parse(argv);
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : 2;
  }
  const o = program.opts<CliOptions>();
  const vectorsDir = resolve(o.vectors ?? process.env.KMIP_VECTORS ?? join(root, '..', 'shared', 'kmip-vectors'));
  if (!existsSync(join(vectorsDir, 'INDEX.csv'))) {
    process.stderr.write(`no KMIP test vectors in ${vectorsDir} (set KMIP_VECTORS or --vectors)\n`);
    return 2;
  }
  if (o.version !== undefined && !(VERSIONS as readonly string[]).includes(o.version)) {
    process.stderr.write(`--version must be one of ${VERSIONS.join(', ')}\n`);
    return 2;
  }
  const ropts: RunOptions = {
    vectorsDir,
    filters: o.filter,
    jobs: o.jobs,
    timeoutMs: o.timeout * 1000,
    toleranceSeconds: o.tolerance,
    log: (l) => process.stderr.write(`${l}\n`),
  };
  if (o.profile) ropts.profile = o.profile;
  if (o.version) ropts.version = o.version;
  if (o.verbose) ropts.verbose = true;
  if (o.host !== undefined) {
    if (o.port === undefined || !o.ca || !o.cert || !o.key) {
      process.stderr.write('--host needs --port, --ca, --cert and --key\n');
      return 2;
    }
    const ext: ConstructorParameters<typeof ExternalTarget>[0] = { host: o.host, port: o.port, ca: o.ca, cert: o.cert, key: o.key };
    if (o.certB && o.keyB) {
      ext.certB = o.certB;
      ext.keyB = o.keyB;
    }
    if (o.servername) ext.servername = o.servername;
    ropts.target = new ExternalTarget(ext);
  }

  const summary = await runConformance(ropts);
  process.stdout.write(`${renderText(summary)}\n`);
  for (const c of orphanCrashes()) process.stderr.write(`an exception escaped while no test case ran:\n${c}\n`);
  if (o.report !== false) {
    const partial = o.filter.length > 0 || o.profile !== undefined || o.version !== undefined;
    const command = `npm run conformance${partial ? ` -- ${argv.slice(2).join(' ')}` : ''}`;
    writeFileSync(o.report, renderMarkdown(summary, { command, date: new Date(), version: VERSION }));
    process.stderr.write(`report written to ${o.report}\n`);
  }
  return summary.failed > 0 ? 1 : 0;
}

const invoked = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) {
  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`conformance runner failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 2;
    },
  );
}

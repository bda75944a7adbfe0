import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { auditAdmin } from '../audit/admin.js';
import { MANIFEST } from '../server/datadir.js';
import { registerCommands } from './commands.js';

/**
 * Admin commands that change what the server trusts or holds. Each one appends an admin record
 * (who, what, on which object, result) to the data directory's audit trail once it has run.
 */
export const AUDITED_COMMANDS: ReadonlySet<string> = new Set([
  'key activate',
  'key revoke',
  'key destroy',
  'master rotate',
  'master migrate',
  'master rollback',
  'master retire-old',
  'root rotate',
  'trust add-ca',
  'trust add-cert',
  'trust remove',
  'cert issue',
  'cert sign',
  'cert rotate-server',
  'migrate',
]);

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

async function auditAfter(_program: Command, action: Command): Promise<void> {
  const name = commandPath(action);
  if (!AUDITED_COMMANDS.has(name)) return;
  const opts = action.opts<{ data?: string; cn?: string; csr?: string; dryRun?: boolean }>();
  if (opts.dryRun === true) return; // changed nothing
  if (!opts.data || !existsSync(join(opts.data, MANIFEST))) return;
  const failed = (process.exitCode ?? 0) !== 0;
  const object = action.args[0] ?? opts.cn ?? opts.csr;
  try {
    await auditAdmin(opts.data, { command: name, result: failed ? 'Failed' : 'Success', ...(object ? { object } : {}) });
  } catch (e) {
    process.stderr.write(`kmipd: warning: '${name}' ran, but its audit record could not be written: ${(e as Error).message}\n`);
    if (!failed) process.exitCode = 3;
  }
}

/** Builds the `kmipd` program with every subcommand registered. */
export function buildProgram(): Command {
  const program = new Command('kmipd')
    .description('kmipd: a KMIP key server (KMIP 1.0-2.1 over mutual TLS)')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) })
    .hook('postAction', auditAfter);
  registerCommands(program);
  return program;
}

export async function run(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}

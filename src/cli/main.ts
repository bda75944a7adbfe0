import { Command } from 'commander';
import { registerCommands } from './commands.js';

/** Builds the `kmipd` program with every subcommand registered. */
export function buildProgram(): Command {
  const program = new Command('kmipd')
    .description('kmipd: a KMIP key server (KMIP 1.0-2.1 over mutual TLS)')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  registerCommands(program);
  return program;
}

export async function run(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}

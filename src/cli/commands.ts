import type { Command } from 'commander';

/**
 * Every subcommand module exports `register(program)`; this list is the one place that
 * wires them in.
 */
type Registrar = (program: Command) => void;

const registrars: Registrar[] = [];

export function registerCommands(program: Command): void {
  for (const r of registrars) r(program);
}

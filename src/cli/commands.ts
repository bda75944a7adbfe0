import type { Command } from 'commander';
import { register as registerCert } from './cert.js';
import { register as registerCodec } from './codec.js';
import { register as registerServe } from './serve.js';

/**
 * Every subcommand module exports `register(program)`; this list is the one place that
 * wires them in.
 */
type Registrar = (program: Command) => void;

const registrars: Registrar[] = [registerServe, registerCert, registerCodec];

export function registerCommands(program: Command): void {
  for (const r of registrars) r(program);
}

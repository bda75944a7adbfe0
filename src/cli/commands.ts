import type { Command } from 'commander';
import { register as registerOperations } from '../admin/cli.js';
import { register as registerConfig } from '../config/cli.js';
import { register as registerAudit } from './audit.js';
import { register as registerBackup } from './backup.js';
import { register as registerCert } from './cert.js';
import { register as registerClient } from './client.js';
import { register as registerCluster } from './cluster.js';
import { register as registerCodec } from './codec.js';
import { register as registerKey } from './key.js';
import { register as registerMaster } from './master.js';
import { register as registerMigrate } from './migrate.js';
import { register as registerNode } from './node.js';
import { register as registerRoot } from './root.js';
import { register as registerServe } from './serve.js';
import { register as registerTrust } from './trust.js';

/**
 * Every subcommand module exports `register(program)`; this list is the one place that
 * wires them in.
 */
type Registrar = (program: Command) => void;

// registerOperations comes after registerCert and registerKey: it adds `cert list` and `key stale` to them.
const registrars: Registrar[] = [registerServe, registerCert, registerTrust, registerKey, registerMaster, registerRoot, registerNode, registerBackup, registerAudit, registerClient, registerCodec, registerConfig, registerOperations, registerMigrate, registerCluster];

export function registerCommands(program: Command): void {
  for (const r of registrars) r(program);
}

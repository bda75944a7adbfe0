/**
 * The `kmipd serve` flags of the settings that had none before this module (the older ones,
 * --host, --port, --log-level and the limits, stay declared in src/cli/serve.ts unchanged), and
 * which flags the user actually typed: only those outrank the environment and the file.
 */
import type { Command } from 'commander';
import { SETTINGS } from './settings.js';

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** Adds --log-file, --admin-host, --admin-port, --admin-client, --usage-flush-seconds, --store-pool-size, --max-connections-per-address, --upstream, --lease-time-seconds, --ticket-lifetime-seconds to `cmd`. */
export function addSettingFlags(cmd: Command): Command {
  return cmd
    .option('--log-file <file>', 'log to this file instead of standard output (reopened on SIGHUP, for logrotate)')
    .option('--admin-port <n|off>', 'serve /livez /readyz /health /metrics over HTTPS on this port (5697 by convention; default off)')
    .option('--admin-host <addr>', 'address of the admin listener (default 127.0.0.1; beyond loopback it requires an admin client certificate)')
    .option('--admin-client <cn>', 'CN of an admin client certificate issued by the kmipd CA (repeatable; default kmipd-admin)', collect)
    .option('--usage-flush-seconds <n>', 'how often last-use times of keys are written to the keystore (default 60; 0: off)')
    .option('--store-pool-size <n>', 'connections to a PostgreSQL keystore kept open at most (default 10)')
    .option('--max-connections-per-address <n>', 'connections open at once from one client address; more are closed before TLS (default 256)')
    .option('--upstream <cn>', 'CN of a client certificate trusted as an upstream key server, which may send Put and Notify (repeatable; default none)', collect)
    .option('--lease-time-seconds <n>', 'the Lease Time attribute kmipd gives cryptographic objects, in seconds (default 3600; 0: none)')
    .option('--ticket-lifetime-seconds <n>', 'the longest life of a KMIP 2.x Login or Delegated Login ticket, in seconds (default 3600)');
}

/** The setting flags typed on the command line, by commander attribute (defaults left out). */
export function typedFlags(cmd: Command): Record<string, unknown> {
  const opts = cmd.opts<Record<string, unknown>>();
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    if (s.key === undefined) continue;
    if (cmd.getOptionValueSource(s.key) === 'cli' && opts[s.key] !== undefined) out[s.key] = opts[s.key];
  }
  return out;
}

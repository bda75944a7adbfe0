/**
 * `kmipd client list [--data DIR] [--json]`: every client identity the server has seen (the
 * certificate's identity: vCenter, PyKMIP, ...) with when it last sent a request, and how many
 * keys it owns. Identities that own keys but were not seen since usage tracking started are
 * listed too, with "never".
 *
 * Last-seen times are written by a running server every usage.flushSeconds (src/admin/usage.ts).
 */
import type { Command } from 'commander';
import { lastSeen, seenIdentities } from '../admin/usage.js';
import type { ServerState } from '../server/server.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { isoSeconds, withData } from './key.js';
import { writer } from './output.js';

export interface ClientRow {
  identity: string;
  /** When it last sent a request; null if not seen since tracking started. */
  lastSeen: string | null;
  /** The operation of that request. */
  lastOperation: string | null;
  /** Objects it owns, in any state. */
  keys: number;
}

export async function listClients(state: ServerState): Promise<ClientRow[]> {
  const owned = new Map<string, number>();
  for (const uid of await state.store.locate({ filters: [] })) {
    const o = await state.store.get(uid);
    if (o) owned.set(o.owner, (owned.get(o.owner) ?? 0) + 1);
  }
  const identities = new Set([...(await seenIdentities(state.store)), ...owned.keys()]);
  const rows: ClientRow[] = [];
  for (const identity of identities) {
    const s = await lastSeen(state.store, identity);
    rows.push({ identity, lastSeen: s ? isoSeconds(s.at) : null, lastOperation: s ? s.op : null, keys: owned.get(identity) ?? 0 });
  }
  // most recently seen first; never seen last, by name
  return rows.sort((a, b) => (b.lastSeen ?? '').localeCompare(a.lastSeen ?? '') || a.identity.localeCompare(b.identity));
}

function table(rows: readonly ClientRow[]): string {
  const lines = [['IDENTITY', 'LAST SEEN', 'LAST OPERATION', 'KEYS'], ...rows.map((r) => [r.identity, r.lastSeen ?? 'never', r.lastOperation ?? '-', String(r.keys)])];
  const widths = lines[0]!.map((_, c) => Math.max(...lines.map((l) => (l[c] ?? '').length)));
  return lines.map((l) => l.map((cell, c) => (c === l.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ')).join('\n') + '\n';
}

export function register(program: Command): void {
  const client = program.command('client').description('client identities: when each was last seen and how many keys it owns');
  client
    .command('list')
    .description('every client identity seen (or owning keys), with its last request and the number of keys it owns')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--json', 'JSON output')
    .action(async (opts: { data: string; json?: boolean }, cmd: Command) => {
      let rows: ClientRow[];
      try {
        rows = await withData(opts.data, listClients);
      } catch (e) {
        cmd.error(`kmipd client list: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.client' });
      }
      const out = writer(cmd);
      if (opts.json) out(JSON.stringify(rows, null, 2) + '\n');
      else out(table(rows) + `${rows.length} identit${rows.length === 1 ? 'y' : 'ies'}\n`);
    });
}

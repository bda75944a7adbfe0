/**
 * Audit records for admin commands that change the server's state (`kmipd key revoke`,
 * `master rotate`, `trust add-ca`, ...): one record in the same chain as the KMIP operations,
 * followed by an anchor, written by the CLI process itself (the log is shared safely with a
 * running server).
 *
 * Use, after the command has done (or failed to do) its work:
 *
 *   await auditAdmin(dataDir, { command: 'key revoke', object: uid, result: 'Success' });
 *   await auditAdmin(dataDir, { command: 'trust add-ca', object: fingerprint, result: 'Failed', reason: msg });
 *
 * A command that already holds the open data directory passes it: `{ state }` (anything with an
 * `audit` log); otherwise the directory is opened (master key included: the anchor needs it)
 * and closed again. Rejects with AuditUnavailableError when the record cannot be written.
 */
import { existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { MANIFEST } from '../server/datadir.js';
import { silentLogger } from '../server/log.js';
import { openServerState } from '../server/server.js';
import type { AuditLog } from './log.js';
import { AuditUnavailableError } from './types.js';

export interface AdminAuditEntry {
  /** The command as typed, without its flags: 'key revoke', 'master rotate', 'trust add-ca'. */
  command: string;
  /** What it acted on: a key's Unique Identifier, a certificate fingerprint, a root key id... */
  object?: string;
  /** 'Success', or 'Failed' (any short status word). */
  result: string;
  /** Why it failed, or a short qualifier (a revocation reason). Never a secret. */
  reason?: string;
}

export interface AdminAuditOptions {
  /** The open data directory of the command (its audit log is used and left open). */
  state?: { audit: AuditLog };
  /** Who ran it; default the operating-system user (and the sudo user behind it). */
  identity?: string;
}

/** `os:alice`, or `os:root (sudo alice)` when run through sudo. */
export function adminIdentity(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? `uid ${process.getuid?.() ?? '?'}`;
  }
  const sudo = process.env.SUDO_USER;
  return sudo && sudo !== user ? `os:${user} (sudo ${sudo})` : `os:${user}`;
}

export async function auditAdmin(dataDir: string, entry: AdminAuditEntry, opts: AdminAuditOptions = {}): Promise<void> {
  const write = async (audit: AuditLog): Promise<void> => {
    await audit.record([
      {
        kind: 'admin',
        identity: opts.identity ?? adminIdentity(),
        address: `local:${hostname()}`,
        operation: entry.command,
        object: entry.object,
        result: entry.result,
        reason: entry.reason,
      },
    ]);
    await audit.anchor();
  };
  if (opts.state) return write(opts.state.audit);
  if (!existsSync(join(dataDir, MANIFEST))) throw new AuditUnavailableError(`no kmipd data folder at ${resolve(dataDir)} (no ${MANIFEST})`);
  const state = await openServerState(dataDir, { log: silentLogger() });
  try {
    await write(state.audit);
  } finally {
    await state.close();
  }
}

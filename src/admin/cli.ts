/**
 * Operator commands:
 *
 *   kmipd cert list  --data DIR [--expiring 30d] [--json]      every certificate kmipd uses or trusts
 *   kmipd key stale  --data DIR [--unused-for 180d] [--in-use FILE] [--json] [--revoke --yes [--reason R]]
 *   kmipd key retire --data DIR [--unused-for 180d] [--in-use FILE] [--grace 30d] [--yes] [--json] [UID...]
 *   kmipd doctor     --data DIR [--json]                       a checklist with fixes; exit 1 on a failure
 *   kmipd doctor     --live HOST:PORT --ca F --cert F --key F [--data DIR] [--timeout MS] [--json]
 *                                                              a vCenter-shaped session against a running server
 *
 * `cert list`, `key stale` and `key retire` join the existing `kmipd cert` and `kmipd key` groups (registered
 * after them in src/cli/commands.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { defaultDataDir } from '../config/load.js';
import { readRawManifest } from '../config/manifest.js';
import { exportSecrets } from '../config/secrets.js';
import { DurationError, formatDuration, parseDuration } from '../config/duration.js';
import { auditAdmin } from '../audit/admin.js';
import { MANIFEST } from '../server/datadir.js';
import { silentLogger } from '../server/log.js';
import { type ServerState, openServerState } from '../server/server.js';
import { type CertRecord, certificateInventory, expiringWithin } from './certs.js';
import { doctorText, runDoctor } from './doctor.js';
import { DEFAULT_LIVE_TIMEOUT_MS, type LiveOptions, liveText, parseLiveTarget, runLiveDoctor } from './doctor-live.js';
import { type RetireAction, type RetireCandidate, type RetirePlan, type StaleKey, STALE_REVOCATION_REASON, applyRetire, findStale, planRetire, readInUseFile, revokeKeys } from './retire.js';
import { writer } from '../cli/output.js';

function duration(): (v: string) => number {
  return (v) => {
    try {
      return parseDuration(v);
    } catch (e) {
      if (e instanceof DurationError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ')).join('\n') + '\n';
}

// ---- cert list -----------------------------------------------------------------------------------

function certJson(c: CertRecord): unknown {
  return { ...c, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() };
}

function certTable(certs: readonly CertRecord[]): string {
  const rows = [['KIND', 'NAME', 'NOT AFTER', 'DAYS', 'STATUS', 'SUBJECT'], ...certs.map((c) => [c.kind, c.name, c.notAfter.toISOString().replace(/\.\d{3}Z$/, 'Z'), String(c.daysLeft), c.status, c.subject])];
  const notes = certs.filter((c) => c.status !== 'ok').map((c) => `${c.kind} ${c.name}: ${c.status === 'expired' ? 'expired' : c.status}: ${c.breaks}`);
  return table(rows) + (notes.length ? '\n' + notes.map((n) => `! ${n}`).join('\n') + '\n' : '');
}

// ---- key stale ------------------------------------------------------------------------------------

function staleTable(keys: readonly StaleKey[]): string {
  return table([
    ['UID', 'TYPE', 'STATE', 'OWNER', 'CREATED', 'LAST USED', 'BY', 'IDLE DAYS', 'X-NAME', 'X-COMPONENT', 'X-IDENTIFIER'],
    ...keys.map((k) => [k.uid, k.objectType, k.state, k.owner, k.created, k.lastUsed ?? 'never', k.lastUsedBy ?? '-', String(k.idleDays), k['x-Name'] ?? '-', k['x-Component'] ?? '-', k['x-Identifier'] ?? '-']),
  ]);
}

async function withData<R>(dataDir: string, fn: (s: ServerState) => Promise<R>): Promise<R> {
  if (!existsSync(join(dataDir, MANIFEST))) {
    throw new Error(`no kmipd data folder at ${resolve(dataDir)} (no ${MANIFEST}); give --data, or run \`kmipd serve --data ${dataDir}\` once first`);
  }
  const state = await openServerState(dataDir, { log: silentLogger() });
  try {
    return await fn(state);
  } finally {
    await state.close();
  }
}

interface StaleOptions {
  data?: string;
  unusedFor: number;
  inUse: string[];
  json?: boolean;
  revoke?: boolean;
  yes?: boolean;
  reason: string;
}

const DEFAULT_UNUSED_FOR = 180 * 86_400_000;

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** The union of the in-use lists given (undefined when none is). */
function readInUse(files: readonly string[]): Set<string> | undefined {
  if (files.length === 0) return undefined;
  const ids = new Set<string>();
  for (const f of files) for (const id of readInUseFile(f)) ids.add(id);
  return ids;
}
const DEFAULT_GRACE = 30 * 86_400_000;

interface RetireCliOptions {
  data?: string;
  unusedFor: number;
  inUse: string[];
  grace: number;
  yes?: boolean;
  json?: boolean;
}

function candidateTable(title: string, cs: readonly RetireCandidate[]): string {
  if (cs.length === 0) return '';
  return (
    `${title}:\n` +
    table([
      ['UID', 'STATE', 'OWNER', 'LAST FETCHED', 'BY', 'X-NAME', 'X-COMPONENT', 'WHY'],
      ...cs.map((c) => [c.uid, c.state, c.owner, c.lastFetched ?? 'never', c.lastFetchedBy ?? '-', c['x-Name'] ?? '-', c['x-Component'] ?? '-', c.note]),
    ]) +
    '\n'
  );
}

function retireText(plan: RetirePlan, actions: readonly RetireAction[], dryRun: boolean): string {
  const verb = dryRun ? ['would deactivate', 'would destroy'] : ['to deactivate', 'to destroy'];
  let s =
    candidateTable(`${verb[0]} (unused for ${formatDuration(plan.unusedFor)})`, plan.deactivate) +
    candidateTable(`${verb[1]} (Deactivated for ${formatDuration(plan.grace)} or more, not requested since)`, plan.destroy) +
    candidateTable('kept: requested since their deactivation', plan.requested) +
    candidateTable(`waiting: grace period of ${formatDuration(plan.grace)} not over`, plan.waiting) +
    candidateTable('left alone: in the in-use list', plan.inUse) +
    candidateTable('skipped', plan.skipped);
  for (const a of actions) s += a.ok ? `${a.uid}: ${a.before ?? '?'} -> ${a.after ?? '?'}\n` : `${a.uid}: ${a.action} failed: ${a.error ?? '?'}\n`;
  const counts = `${plan.deactivate.length} to deactivate, ${plan.destroy.length} to destroy, ${plan.requested.length} kept (requested since deactivation), ${plan.waiting.length} in grace period, ${plan.inUse.length} in use, ${plan.skipped.length} skipped`;
  if (dryRun) return s + `dry run: ${counts}; nothing changed (add --yes to apply)\n`;
  const done = (what: RetireAction['action']): number => actions.filter((a) => a.action === what && a.ok).length;
  return s + `${counts}\ndeactivated ${done('deactivate')} of ${plan.deactivate.length}, destroyed ${done('destroy')} of ${plan.destroy.length}\n`;
}

/**
 * Secrets from *_FILE variables and systemd credentials for every command (`kmipd master
 * migrate`, `kmipd backup`, ...), not only `serve`: put into the variables those commands read.
 */
function secretsHook(program: Command): void {
  program.hook('preAction', (_root, action) => {
    const env = process.env;
    const files = env.CREDENTIALS_DIRECTORY || env.KMIPD_PKCS11_PIN_FILE || env.KMIPD_DB_PASSWORD_FILE || env.KMIPD_BUNDLE_PASSPHRASE_FILE;
    // `kmipd config` reports where each secret comes from itself, and needs none.
    if (!files || action.parent?.name() === 'config') return;
    const o = action.opts<{ data?: unknown }>();
    const dir = typeof o.data === 'string' ? o.data : defaultDataDir();
    let raw;
    try {
      raw = readRawManifest(dir);
    } catch {
      raw = undefined; // the command itself reports a broken kmipd.json
    }
    try {
      exportSecrets(dir, raw);
    } catch (e) {
      action.error(`kmipd: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.secret' });
    }
  });
}

export function register(program: Command): void {
  secretsHook(program);
  const cert = program.commands.find((c) => c.name() === 'cert') ?? program.command('cert').description('certificates');
  cert
    .command('list')
    .description('every certificate kmipd uses or trusts (CA, server, trusted CAs, pinned certificates) with its expiry and what the expiry breaks')
    .option('--data <dir>', 'kmipd data folder (default: KMIPD_DATA, else ./kmipd-data)')
    .option('--expiring <duration>', 'only those expiring within this long (or expired), e.g. 30d', duration())
    .option('--json', 'JSON output')
    .action((opts: { data?: string; expiring?: number; json?: boolean }, cmd: Command) => {
      const dir = opts.data ?? defaultDataDir();
      if (!existsSync(join(dir, 'pki', 'ca.crt'))) cmd.error(`kmipd cert list: no kmipd PKI in ${resolve(dir)}; run \`kmipd serve --data ${dir}\` once first`, { exitCode: 1, code: 'kmipd.cert' });
      const now = new Date();
      const inv = certificateInventory(dir, { now });
      const certs = opts.expiring !== undefined ? expiringWithin(inv.certs, opts.expiring, now) : inv.certs;
      const out = writer(cmd);
      if (opts.json) out(JSON.stringify(certs.map(certJson), null, 2) + '\n');
      else {
        out(certTable(certs));
        if (opts.expiring !== undefined) out(`${certs.length} certificate(s) expire within ${formatDuration(opts.expiring)}\n`);
      }
      for (const p of inv.problems) process.stderr.write(`kmipd cert list: ${p}\n`);
    });

  const key = program.commands.find((c) => c.name() === 'key') ?? program.command('key').description('keys');
  key
    .command('stale')
    .description("keys (Pre-Active or Active) nobody fetched or used for a long time, with vCenter's tags; --revoke --yes revokes them all")
    .option('--data <dir>', 'kmipd data folder (default: KMIPD_DATA, else ./kmipd-data)')
    .addOption(new Option('--unused-for <duration>', 'not fetched (Get or a cryptographic operation) for this long; a key never fetched counts from its creation').argParser(duration()).default(DEFAULT_UNUSED_FOR, '180d'))
    .option('--in-use <file>', "key IDs still in use, never listed: one per line, or a CSV with a KeyId column (vCenter's keys exported with PowerCLI; see docs/operating.md); repeatable", collect, [])
    .option('--json', 'JSON output')
    .option('--revoke', 'revoke every key listed (needs --yes)')
    .option('--yes', 'confirm --revoke')
    .option('--reason <r>', 'the revocation reason for --revoke', STALE_REVOCATION_REASON)
    .action(async (opts: StaleOptions, cmd: Command) => {
      const dir = opts.data ?? defaultDataDir();
      const out = writer(cmd);
      const fail = (e: unknown): never => cmd.error(`kmipd key stale: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.key' });
      if (opts.yes && !opts.revoke) fail(new Error('--yes confirms --revoke; give both to revoke'));
      try {
        await withData(dir, async (state) => {
          const inUse = readInUse(opts.inUse);
          const { keys, excluded } = await findStale(state, opts.unusedFor, inUse);
          const since = formatDuration(opts.unusedFor);
          const excludedNote = inUse ? `${excluded.length} more left out: in use (${opts.inUse.join(', ')}: ${inUse.size} key ID(s))\n` : '';
          if (!opts.revoke) {
            out(opts.json ? JSON.stringify(keys, null, 2) + '\n' : staleTable(keys) + `${keys.length} key(s) not used for ${since} or more\n` + excludedNote);
            return;
          }
          if (!opts.yes) {
            if (!opts.json) out(staleTable(keys));
            throw new Error(`${keys.length} key(s) would be revoked (reason ${opts.reason}); add --yes to revoke them`);
          }
          const results = await revokeKeys(state, keys.map((k) => k.uid), opts.reason, `unused for ${since} (kmipd key stale)`);
          const ok = results.filter((r) => r.ok).length;
          try {
            await auditAdmin(dir, { command: 'key stale --revoke', object: `${ok} key(s)`, result: ok === results.length ? 'Success' : 'Failed', reason: `unused for ${since}` }, { state });
          } catch (e) {
            process.stderr.write(`kmipd key stale: the admin audit record could not be written: ${(e as Error).message}\n`);
          }
          if (opts.json) out(JSON.stringify(results, null, 2) + '\n');
          else {
            for (const r of results) out(r.ok ? `${r.uid}: ${r.before ?? '?'} -> ${r.after ?? '?'}\n` : `${r.uid}: not revoked: ${r.error ?? '?'}\n`);
            out(`revoked ${ok} of ${results.length} key(s) not used for ${since}\n`);
          }
          if (ok !== results.length) throw new Error(`${results.length - ok} key(s) could not be revoked`);
        });
      } catch (e) {
        fail(e);
      }
    });

  key
    .command('retire')
    .description('retire stale keys: deactivate them (Cessation of Operation), and destroy those deactivated for the grace period without being requested since; a dry run unless --yes')
    .argument('[uid...]', 'only these keys instead of the stale selection')
    .option('--data <dir>', 'kmipd data folder (default: KMIPD_DATA, else ./kmipd-data)')
    .addOption(new Option('--unused-for <duration>', 'deactivate keys not fetched for this long (a key never fetched counts from its creation)').argParser(duration()).default(DEFAULT_UNUSED_FOR, '180d'))
    .option('--in-use <file>', 'key IDs still in use, never touched: one per line, or a CSV with a KeyId column (see docs/operating.md); repeatable', collect, [])
    .addOption(new Option('--grace <duration>', 'destroy a retired key once Deactivated this long without a request').argParser(duration()).default(DEFAULT_GRACE, '30d'))
    .option('--yes', 'do it (without: print what would be done, change nothing)')
    .option('--json', 'JSON output')
    .action(async (uids: string[], opts: RetireCliOptions, cmd: Command) => {
      const dir = opts.data ?? defaultDataDir();
      const out = writer(cmd);
      const fail = (e: unknown): never => cmd.error(`kmipd key retire: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.key' });
      let failed = 0;
      try {
        await withData(dir, async (state) => {
          const inUse = readInUse(opts.inUse);
          const plan = await planRetire(state, { unusedForMs: opts.unusedFor, graceMs: opts.grace, ...(inUse ? { inUse } : {}), ...(uids.length ? { uids } : {}) });
          const actions = opts.yes ? await applyRetire(state, plan) : [];
          failed = actions.filter((a) => !a.ok).length;
          if (opts.json) out(JSON.stringify({ dryRun: !opts.yes, ...plan, actions }, null, 2) + '\n');
          else out(retireText(plan, actions, !opts.yes));
        });
      } catch (e) {
        fail(e);
      }
      if (failed > 0) fail(new Error(`${failed} action(s) failed (see above)`));
    });

  program
    .command('doctor')
    .description(
      'check a data directory as an operator would (permissions, manifest, keystore integrity, master key, certificates, trust, ports, HSM, clock); ' +
        'with --live, replay a vCenter-shaped KMIP session against a running server, step by step; exit 1 on any failure',
    )
    .option('--data <dir>', 'kmipd data directory (default without --live: KMIPD_DATA, else ./kmipd-data)')
    .option('--live <host:port>', 'a running KMIP server to replay a vCenter session against (needs --ca, --cert, --key)')
    .option('--ca <file>', "with --live: the CA certificate (PEM) the server's certificate must chain to")
    .option('--cert <file>', 'with --live: the client certificate (PEM)')
    .option('--key <file>', 'with --live: the client private key (PEM, unencrypted)')
    .option('--timeout <ms>', `with --live: deadline of each connection and each request (default ${DEFAULT_LIVE_TIMEOUT_MS})`, positiveInt('--timeout'))
    .option('--json', 'JSON output')
    .action(async (opts: DoctorCliOptions, cmd: Command) => {
      const out = writer(cmd);
      const fail = (msg: string): never => cmd.error(`kmipd doctor: ${msg}`, { exitCode: 1, code: 'kmipd.doctor' });
      if (opts.live === undefined) {
        const given = (['ca', 'cert', 'key', 'timeout'] as const).filter((k) => opts[k] !== undefined);
        if (given.length > 0) fail(`${given.map((k) => `--${k}`).join(', ')} go with --live HOST:PORT`);
        const r = await runDoctor(opts.data ?? defaultDataDir());
        out(opts.json ? JSON.stringify(r, null, 2) + '\n' : doctorText(r));
        if (!r.ok) fail('some checks failed (see above)');
        return;
      }
      let target;
      try {
        target = parseLiveTarget(opts.live);
      } catch (e) {
        return fail((e as Error).message);
      }
      const missing = (['ca', 'cert', 'key'] as const).filter((k) => opts[k] === undefined);
      if (missing.length > 0) fail(`--live needs ${missing.map((k) => `--${k} FILE`).join(', ')}`);
      const read = (flag: string, file: string): string => {
        try {
          return readFileSync(file, 'utf8');
        } catch (e) {
          return fail(`${flag} ${file} cannot be read: ${(e as Error).message}`);
        }
      };
      const live: LiveOptions = { ...target, caPem: read('--ca', opts.ca!), certPem: read('--cert', opts.cert!), keyPem: read('--key', opts.key!) };
      if (opts.timeout !== undefined) live.timeoutMs = opts.timeout;
      const data = opts.data !== undefined ? await runDoctor(opts.data) : undefined;
      const lr = await runLiveDoctor(live);
      const ok = lr.ok && (data?.ok ?? true);
      if (opts.json) out(JSON.stringify({ ok, ...(data ? { data } : {}), live: lr }, null, 2) + '\n');
      else out((data ? doctorText(data) + '\n' : '') + liveText(lr));
      if (!ok) fail(lr.ok ? 'some checks failed (see above)' : 'the live session failed (see above)');
    });
}

interface DoctorCliOptions {
  data?: string;
  live?: string;
  ca?: string;
  cert?: string;
  key?: string;
  timeout?: number;
  json?: boolean;
}

function positiveInt(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag}: must be a whole number of milliseconds, at least 1`);
    return n;
  };
}

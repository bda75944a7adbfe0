/**
 * `kmipd master`: the master key of a data directory (the key that wraps the root keys).
 *
 *   kmipd master status   --data DIR [--json]
 *   kmipd master rotate   --data DIR
 *   kmipd master migrate  --data DIR --to pkcs11 --pkcs11-module PATH --pkcs11-token LABEL [--pkcs11-key-label L]
 *   kmipd master migrate  --data DIR --to software
 *   kmipd master rollback --data DIR
 *   kmipd master retire-old --data DIR [--force] [--forget NODE]...
 *
 * All of them work while `kmipd serve` runs on the same directory: the root keys do not change,
 * only their wrapping, so the running server is not affected, and its next start (with only
 * --data) opens the new master key. The PIN of a token comes from KMIPD_PKCS11_PIN, never from a
 * flag. Rotation and migration keep the previous key (a key file renamed `<file>.retired`, a
 * token key left on the token) so that `kmipd master rollback` can return to it; once no backup
 * of the keystore needs it, destroy it (`shred -u FILE`, or delete the key in the HSM).
 *
 * Several nodes on one PostgreSQL keystore: a change made on one node is handed to the others
 * through the keystore (the new key wrapped under the previous one, or a PKCS#11 label); they
 * adopt it by themselves, and `status` shows which version each node runs. `retire-old` erases
 * the hand-offs once every node runs the current version (src/server/master-handoff.ts).
 *
 * The steps and what happens when a command is interrupted: src/server/key-admin.ts.
 */
import { type Command, Option } from 'commander';
import { type KeyStatus, type MasterChangeResult, type RetireOldResult, keyStatus, migrateMaster, retireOldMaster, rollbackMaster, rotateMaster } from '../server/key-admin.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { writer } from './output.js';

function fail(cmd: Command, what: string, e: unknown): never {
  cmd.error(`kmipd master ${what}: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.master' });
}

function changeText(r: MasterChangeResult): string {
  const v = (x: MasterChangeResult['to']) => `version ${x.version} (${x.kind}, ${x.location}${x.id ? `, id ${x.id}` : ''})`;
  const lines = [
    r.action === 'finished'
      ? `completed an interrupted master key change: master key ${v(r.to)} now wraps the ${r.rootKeys} root key(s)`
      : `master key ${r.action}: ${v(r.to)} now wraps the ${r.rootKeys} root key(s); ${v(r.from)} is retired`,
    '  the root keys themselves did not change: a running server keeps serving; its next start needs only --data',
    ...r.notes.map((n) => `  ${n}`),
  ];
  return lines.join('\n') + '\n';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => '  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function statusText(s: KeyStatus): string {
  const out: string[] = [];
  out.push(`data directory: ${s.dataDir} (${s.mode === 'direct' ? 'direct mode: objects are sealed inside the HSM' : 'root mode'})`);
  out.push('master key versions:');
  out.push(
    table([
      ['VERSION', 'KIND', 'STATUS', 'CREATED', 'RETIRED', 'ID', 'WHERE'],
      ...s.masterVersions.map((v) => [String(v.version), v.kind, v.status, v.created ?? '?', v.retired ?? '-', v.id ?? '?', v.location]),
    ]).trimEnd(),
  );
  out.push('root keys:');
  out.push(
    table([
      ['ID', 'STATUS', 'CREATED', 'MASTER', 'OBJECTS', 'NOTE'],
      ...s.rootKeys.map((k) => [k.id, k.status, k.created, k.masterVersion === null ? `? (${k.masterKeyId})` : `v${k.masterVersion}`, String(k.objects), k.note ?? '']),
    ]).trimEnd(),
  );
  const o = s.objects;
  const parts = [`${o.underActiveRootKey} under the active root key`, `${o.underRetiredRootKeys} under retired root keys`];
  if (o.sealedByHsm) parts.push(`${o.sealedByHsm} sealed by the HSM key (direct mode)`);
  if (o.underUnknownKeys) parts.push(`${o.underUnknownKeys} under unknown keys`);
  out.push(`objects with key material: ${o.sealed} (${parts.join(', ')})`);
  out.push(`root key rotation: ${s.rootRotationComplete ? 'complete' : 'in progress (run `kmipd root rotate` to resume)'}`);
  if (s.nodes.length > 0) {
    out.push('nodes (the master key version each runs):');
    out.push(
      table([
        ['NODE', 'VERSION', 'ID', 'SINCE', 'SEEN', 'STATE'],
        ...s.nodes.map((n) => [`${n.node}${n.self ? ' (this one)' : ''}`, `v${n.version}`, n.keyId, n.since, n.seen, n.current ? 'current' : 'behind: adopts at its next poll or start']),
      ]).trimEnd(),
    );
  }
  if (s.handoffs.length > 0) {
    out.push(`master key hand-offs in the keystore: ${s.handoffs.map((h) => `v${h.version} (${h.kind}, ${h.keyId}, from ${h.from}, ${h.created})`).join('; ')}`);
  }
  if (s.notes.length) out.push('notes:', ...s.notes.map((n) => `  - ${n}`));
  return out.join('\n') + '\n';
}

interface MigrateFlags {
  data: string;
  to: 'software' | 'pkcs11';
  pkcs11Module?: string;
  pkcs11Token?: string;
  pkcs11KeyLabel: string;
}

function retireText(r: RetireOldResult): string {
  const lines = [
    r.erased.length > 0
      ? `master key hand-offs erased: ${r.erased.map((e) => `version ${e.version} (${e.keyId})`).join(', ')}`
      : 'no master key hand-off to erase',
  ];
  if (r.forgotten.length > 0) lines.push(`  nodes forgotten: ${r.forgotten.join(', ')}`);
  if (r.behind.length > 0) lines.push(`  nodes still on an earlier version (--force): ${r.behind.map((n) => n.node).join(', ')}: set them up again from a new node bundle`);
  lines.push(...r.notes.map((n) => `  ${n}`));
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  const master = program.command('master').description('the master key: status, rotation, migration between software and an HSM (PKCS#11), rollback');

  master
    .command('status')
    .description('master key versions, root keys (which master version wraps each) and how many objects each root key protects')
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .option('--json', 'JSON output')
    .action(async (opts: { data: string; json?: boolean }, cmd: Command) => {
      let s: KeyStatus;
      try {
        s = await keyStatus(opts.data);
      } catch (e) {
        fail(cmd, 'status', e);
      }
      writer(cmd)(opts.json ? JSON.stringify(s, null, 2) + '\n' : statusText(s));
    });

  master
    .command('rotate')
    .description(
      'a new master key version (software: a new key file master-N.key; PKCS#11: a new token key <label>-vN generated in the HSM); ' +
        'the root keys are re-wrapped under it, the previous version is retired and kept (rollback). Also finishes an interrupted change.',
    )
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .action(async (opts: { data: string }, cmd: Command) => {
      let r: MasterChangeResult;
      try {
        r = await rotateMaster(opts.data);
      } catch (e) {
        fail(cmd, 'rotate', e);
      }
      writer(cmd)(changeText(r));
    });

  master
    .command('migrate')
    .description('move to a master key of the other kind: software -> PKCS#11 (root mode), or PKCS#11 -> software; PIN from KMIPD_PKCS11_PIN')
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .addOption(new Option('--to <kind>', 'the new master key provider').choices(['software', 'pkcs11']).makeOptionMandatory())
    .option('--pkcs11-module <path>', 'PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so)')
    .option('--pkcs11-token <label>', 'label of the token to create the master key in')
    .option('--pkcs11-key-label <label>', 'label of the new master key in the token', 'kmipd-master')
    .action(async (f: MigrateFlags, cmd: Command) => {
      let r: MasterChangeResult;
      try {
        if (f.to === 'pkcs11') {
          if (!f.pkcs11Module || !f.pkcs11Token) throw new Error('--to pkcs11 needs --pkcs11-module PATH and --pkcs11-token LABEL');
          const pin = process.env.KMIPD_PKCS11_PIN;
          if (pin === undefined || pin === '') throw new Error('set the PIN of the token in the environment variable KMIPD_PKCS11_PIN (it is never taken from a flag)');
          r = await migrateMaster(f.data, { to: 'pkcs11', module: f.pkcs11Module, token: f.pkcs11Token, keyLabel: f.pkcs11KeyLabel, pin });
        } else {
          r = await migrateMaster(f.data, { to: 'software' });
        }
      } catch (e) {
        fail(cmd, 'migrate', e);
      }
      writer(cmd)(changeText(r));
    });

  master
    .command('retire-old')
    .description(
      'end the hand-off of master key changes to the other nodes of a shared keystore: erase the newer keys kept wrapped under the older ones; ' +
        'refused while a node runs an earlier version (unless --force)',
    )
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .option('--force', 'erase even though some nodes have not adopted the current version (they will need a new node bundle)')
    .option('--forget <node>', 'drop a node removed for good from the list first (as `kmipd master status` names it; repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .action(async (opts: { data: string; force?: boolean; forget: string[] }, cmd: Command) => {
      let r: RetireOldResult;
      try {
        r = await retireOldMaster(opts.data, { force: opts.force === true, forget: opts.forget });
      } catch (e) {
        fail(cmd, 'retire-old', e);
      }
      writer(cmd)(retireText(r));
    });

  master
    .command('rollback')
    .description('make the newest retired master key version current again (the root keys are re-wrapped under it); the current one is retired and kept')
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .action(async (opts: { data: string }, cmd: Command) => {
      let r: MasterChangeResult;
      try {
        r = await rollbackMaster(opts.data);
      } catch (e) {
        fail(cmd, 'rollback', e);
      }
      writer(cmd)(changeText(r));
    });
}

/**
 * `kmipd backup` and `kmipd restore`: a consistent snapshot of the keystore while the server
 * serves, and its restore into an empty keystore of either backend (src/server/backup.ts).
 *
 *   kmipd backup  --data DIR --out FILE
 *   kmipd restore --data DIR --in FILE [--store postgres://...|sqlite|sqlite:FILE]
 *
 * Moving from SQLite to PostgreSQL (or back) is a backup and a restore with --store; the
 * manifest then names the new keystore. Key material stays wrapped in the file; the restore
 * opens every object's material with the data directory's master key before reporting success.
 */
import type { Command } from 'commander';
import { restoreBackup, writeBackup } from '../server/backup.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { NO_PROGRESS, progressBar } from './progress.js';
import { writer } from './output.js';

function fail(cmd: Command, what: string, e: unknown): never {
  cmd.error(`kmipd ${what}: ${(e as Error).message}`, { exitCode: 1, code: `kmipd.${what}` });
}

export function register(program: Command): void {
  program
    .command('backup')
    .description('write a consistent snapshot of the keystore (objects, root keys, settings; key material stays wrapped) while the server runs')
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .requiredOption('--out <file>', 'the backup file to write (replaced atomically; mode 0600)')
    .option('--no-progress', 'no progress bar on stderr')
    .action(async (opts: { data: string; out: string; progress: boolean }, cmd: Command) => {
      const started = Date.now();
      let s;
      try {
        s = await writeBackup(opts.data, opts.out, { progress: opts.progress ? progressBar() : NO_PROGRESS });
      } catch (e) {
        fail(cmd, 'backup', e);
      }
      writer(cmd)(
        `Backed up ${s.objects} object(s), ${s.rootKeys} root key(s) and ${s.meta} setting(s) of ${s.store} to ${s.file} ` +
          `in ${((Date.now() - started) / 1000).toFixed(1)} s.\nKey material is in it wrapped; the master key is not: keep the master key (or the HSM) to restore.\n`,
      );
    });

  program
    .command('restore')
    .description('restore a backup into an EMPTY keystore (this directory\'s, or --store), checking every key against the master key')
    .option('--data <dir>', 'kmipd data directory (its master key must be the one the backup was made with)', DEFAULT_DATA_DIR)
    .requiredOption('--in <file>', 'the backup file (from `kmipd backup`)')
    .option('--store <store>', 'restore into this keystore instead and record it in kmipd.json: postgres://USER@HOST:PORT/DB, sqlite, or sqlite:FILE')
    .option('--no-progress', 'no progress bar on stderr')
    .action(async (opts: { data: string; in: string; store?: string; progress: boolean }, cmd: Command) => {
      const started = Date.now();
      let s;
      try {
        const o: Parameters<typeof restoreBackup>[2] = { progress: opts.progress ? progressBar() : NO_PROGRESS };
        if (opts.store !== undefined) o.store = opts.store;
        s = await restoreBackup(opts.data, opts.in, o);
      } catch (e) {
        fail(cmd, 'restore', e);
      }
      writer(cmd)(
        [
          `Restored ${s.objects} object(s), ${s.rootKeys} root key(s) and ${s.meta} setting(s) into ${s.store} in ${((Date.now() - started) / 1000).toFixed(1)} s.`,
          `Verified: the key material of every object (${s.verified}) opens with master key ${s.masterKey}.`,
          ...(s.switched ? [`kmipd.json now names this keystore; start the server with \`kmipd serve --data ${opts.data}\`.`] : []),
          '',
        ].join('\n'),
      );
    });
}

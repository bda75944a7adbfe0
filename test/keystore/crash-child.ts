/**
 * Child process of the crash-safety test (not a test itself): inserts objects forever, in
 * concurrent waves that group commit, and prints each uid on stdout once its insert resolved.
 * The test kills it with SIGKILL and checks that every printed uid is in the database, intact.
 *
 *   node <tap's execArgv> test/keystore/crash-child.ts <db file> [background]
 *
 * With "background" the store checkpoints on its worker thread (as the server's does), so the
 * kill may also land in the middle of a checkpoint.
 */
import { openSqliteStore } from '../../src/keystore/sqlite.js';
import { crashObject } from './crash-object.js';

const file = process.argv[2];
if (file === undefined) throw new Error('usage: crash-child.ts <db file>');
const store = await openSqliteStore(file, { backgroundCheckpoints: process.argv[3] === 'background' });
process.stdout.write('ready\n');
for (let i = 0; ; ) {
  const wave: Promise<void>[] = [];
  for (let k = 0; k < 25; k++, i++) {
    const o = crashObject(i);
    // stdout is a pipe: on Linux, writes to pipes are synchronous, so the line is out before
    // the next await.
    wave.push(store.insert(o).then(() => void process.stdout.write(`${o.uid}\n`)));
  }
  await Promise.all(wave);
}

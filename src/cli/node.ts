/**
 * `kmipd node`: several servers on one shared keystore (PostgreSQL).
 *
 *   kmipd node export --data DIR --out FILE [--with-server-cert]
 *   kmipd node join   --data DIR2 --in FILE [--store URL]      (set up only; or `serve --join`)
 *
 * The bundle holds the CA, the trust store, the manifest without local paths and the software
 * master key, encrypted with a passphrase from KMIPD_BUNDLE_PASSPHRASE or asked on the terminal
 * (src/server/node-bundle.ts).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../pki/store.js';
import { bundlePassphrase, buildNodeBundle, joinFromBundle, sealBundle } from '../server/node-bundle.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { writer } from './output.js';

function fail(cmd: Command, what: string, e: unknown): never {
  cmd.error(`kmipd node ${what}: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.node' });
}

export function register(program: Command): void {
  const node = program.command('node').description('several kmipd servers sharing one keystore: hand a node\'s CA, trust and master key to a new one');

  node
    .command('export')
    .description('write an encrypted bundle (CA, trust store, settings, software master key) for setting up another node')
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .requiredOption('--out <file>', 'the bundle file to write (mode 0600)')
    .option('--with-server-cert', "include this node's server certificate and key (nodes behind one name that clients pinned)")
    .action(async (opts: { data: string; out: string; withServerCert?: boolean }, cmd: Command) => {
      let text: string;
      let software = false;
      try {
        const passphrase = await bundlePassphrase({ confirm: true });
        const bundle = buildNodeBundle(opts.data, { withServerCert: opts.withServerCert === true });
        software = bundle.masterKey !== undefined;
        const plain = Buffer.from(JSON.stringify(bundle), 'utf8');
        try {
          text = await sealBundle(plain, passphrase);
        } finally {
          plain.fill(0);
        }
        writeFileAtomic(resolve(opts.out), text, 0o600);
      } catch (e) {
        fail(cmd, 'export', e);
      }
      writer(cmd)(
        [
          `Wrote the node bundle ${resolve(opts.out)} (encrypted with the passphrase; it holds the CA key${software ? ' and the master key' : ''}: keep it secret, delete it once used).`,
          `On the new node: kmipd serve --data DIR --join ${opts.out} --store postgres://USER@HOST:PORT/DB  (passphrase in KMIPD_BUNDLE_PASSPHRASE, or asked)`,
          '',
        ].join('\n'),
      );
    });

  node
    .command('join')
    .description('set up a new data directory from a node bundle, without starting the server (`kmipd serve --join` does both)')
    .option('--data <dir>', 'the new data directory (empty or missing)', DEFAULT_DATA_DIR)
    .requiredOption('--in <file>', 'the bundle from `kmipd node export`')
    .option('--store <store>', "the keystore: postgres://USER@HOST:PORT/DB (default: the exporting node's), sqlite, or sqlite:FILE")
    .option('--pkcs11-module <path>', 'the PKCS#11 module on this machine, when it differs from the exporting node\'s')
    .action(async (opts: { data: string; in: string; store?: string; pkcs11Module?: string }, cmd: Command) => {
      let done: boolean;
      try {
        const text = readFileSync(opts.in, 'utf8');
        const passphrase = await bundlePassphrase({ confirm: false });
        const o: Parameters<typeof joinFromBundle>[2] = { passphrase };
        if (opts.store !== undefined) o.store = opts.store;
        if (opts.pkcs11Module !== undefined) o.pkcs11Module = opts.pkcs11Module;
        done = await joinFromBundle(opts.data, text, o);
      } catch (e) {
        fail(cmd, 'join', e);
      }
      writer(cmd)(
        done
          ? `Set up ${resolve(opts.data)} from the bundle. Start it with: kmipd serve --data ${opts.data} (it issues its own server certificate from the shared CA; add names with --san).\n`
          : `${resolve(opts.data)} is set up already; nothing changed.\n`,
      );
    });
}

/**
 * `kmipd root`: the root keys of a data directory (they seal every object's key material).
 *
 *   kmipd root rotate --data DIR [--batch N]
 *
 * Makes a new root key the active one, then re-wraps every object under it, N objects per
 * keystore transaction, with progress on stderr (a bar on a terminal, else a line every few
 * seconds). It works while `kmipd serve` runs on the same directory: the server loads the new
 * root key when it meets an object re-wrapped under it, and seals under it within a few seconds
 * (ROOT_KEY_REFRESH_MS); objects are readable throughout. Interrupted at any point (Ctrl-C,
 * kill -9, a crash), running it again continues where it stopped: while objects remain under
 * retired root keys no new key is made. The retired root keys stay in the keystore; `kmipd
 * master status` shows when one protects nothing any more.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { RewrapProgress } from '../crypto/rotation.js';
import { type RootRotateResult, rotateRoot } from '../server/key-admin.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { writer } from './output.js';

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

const LINE_EVERY_MS = 2000;
const BAR_EVERY_MS = 100;
const BAR_WIDTH = 30;

/** Progress on `stream`: a redrawn bar on a terminal, else a line every few seconds. */
export function progressPrinter(stream: NodeJS.WritableStream & { isTTY?: boolean }): { start(s: { resumed: boolean; activeKeyId: string; objects: number }): void; progress(p: RewrapProgress): void; end(): void } {
  const tty = stream.isTTY === true;
  let last = 0;
  let lines = 0;
  let lastDone = -1;
  let barShown = false;
  const rate = (p: RewrapProgress): string => {
    const s = (Date.now() - p.startedAt) / 1000;
    return s > 0 ? `${Math.round(p.done / s)}/s` : '';
  };
  return {
    start(s) {
      stream.write(
        s.resumed
          ? `kmipd root rotate: resuming: root key ${s.activeKeyId} is active; ${s.objects} object(s) still under retired root keys\n`
          : `kmipd root rotate: new root key ${s.activeKeyId} is active; re-wrapping ${s.objects} object(s)\n`,
      );
    },
    progress(p) {
      const now = Date.now();
      const pct = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100;
      if (tty) {
        if (now - last < BAR_EVERY_MS && p.done < p.total) return;
        last = now;
        const filled = Math.round((BAR_WIDTH * pct) / 100);
        stream.write(`\r  [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${String(pct).padStart(3)}% ${p.done}/${p.total} ${rate(p)}   `);
        barShown = true;
        return;
      }
      // The first line as soon as work has started, then one every few seconds, and the last one.
      const finished = p.done >= p.total && p.done !== lastDone;
      if (p.done === 0 || (lines > 0 && now - last < LINE_EVERY_MS && !finished)) return;
      last = now;
      lastDone = p.done;
      lines++;
      stream.write(`kmipd root rotate: ${p.done}/${p.total} objects re-wrapped (${pct}%, ${rate(p)}, pass ${p.pass})\n`);
    },
    end() {
      if (barShown) stream.write('\n');
    },
  };
}

function resultText(r: RootRotateResult): string {
  const lines: string[] = [];
  const w = r.rewrap;
  if (w.remaining === 0) {
    lines.push(`root key rotation ${r.resumed ? 'resumed and ' : ''}complete: ${w.rewrapped} object(s) re-wrapped under ${r.activeKeyId}`);
  } else {
    lines.push(`root key rotation stopped with ${w.remaining} object(s) still under retired root keys (${w.rewrapped} re-wrapped): run the same command again to resume`);
  }
  if (w.conflicts > 0) lines.push(`  ${w.conflicts} concurrent change(s) by a running server were re-read and re-wrapped again`);
  for (const k of r.rootKeys.filter((x) => x.status === 'retired')) {
    lines.push(`  retired root key ${k.id}: ${k.objects} object(s)${k.objects === 0 ? ' (protects nothing any more; it is kept in the keystore)' : ''}`);
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  const root = program.command('root').description('the root keys that seal every object: rotation');

  root
    .command('rotate')
    .description('a new active root key, then every object re-wrapped under it in batches (resumable; works while the server runs)')
    .option('--data <dir>', 'kmipd data directory', DEFAULT_DATA_DIR)
    .option('--batch <n>', 'objects per keystore transaction', intArg('--batch', 1, 100_000), 100)
    .action(async (opts: { data: string; batch: number }, cmd: Command) => {
      const p = progressPrinter(process.stderr);
      const abort = new AbortController();
      const onSignal = (): void => {
        process.stderr.write('\nkmipd root rotate: stopping after this batch (run the command again to resume)\n');
        abort.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let r: RootRotateResult;
      try {
        r = await rotateRoot(opts.data, { batch: opts.batch, onStart: (s) => p.start(s), onProgress: (x) => p.progress(x), signal: abort.signal });
      } catch (e) {
        p.end();
        cmd.error(`kmipd root rotate: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.root' });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      p.end();
      writer(cmd)(resultText(r));
      if (r.rewrap.remaining > 0) process.exitCode = 2;
    });
}

/**
 * A progress bar on stderr for long commands (backup, restore). On a terminal it redraws one
 * line at most ten times a second; otherwise (logs, CI) it prints a line every 10 %. Small jobs
 * show nothing.
 */
import type { ProgressFactory } from '../server/backup.js';

export const NO_PROGRESS: ProgressFactory = () => ({ tick: () => undefined, done: () => undefined });

export interface BarOptions {
  stream?: NodeJS.WriteStream;
  /** Fewer items than this: no bar (default 1000 on a terminal, 10,000 otherwise). */
  minTotal?: number;
}

export function progressBar(opts: BarOptions = {}): ProgressFactory {
  const stream = opts.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const minTotal = opts.minTotal ?? (tty ? 1000 : 10_000);
  return (label, total) => {
    if (total < minTotal) return NO_PROGRESS(label, total);
    const started = Date.now();
    let n = 0;
    let lastDraw = 0;
    let lastDecile = -1;
    let lastPrinted = -1;
    let finished = false;
    const draw = (final: boolean): void => {
      const frac = total === 0 ? 1 : Math.min(1, n / total);
      const pct = Math.floor(frac * 100);
      if (tty) {
        const width = 30;
        const full = Math.round(frac * width);
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        stream.write(`\r${label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(pct).padStart(3)}% ${n}/${total} ${secs}s${final ? '\n' : ''}`);
      } else {
        const decile = Math.floor(pct / 10);
        if (decile !== lastDecile || (final && n !== lastPrinted)) {
          lastPrinted = n;
          lastDecile = decile;
          stream.write(`${label}: ${pct}% (${n}/${total})\n`);
        }
      }
    };
    return {
      tick(k = 1) {
        if (finished) return;
        n += k;
        const now = Date.now();
        if (!tty || now - lastDraw >= 100) {
          lastDraw = now;
          draw(false);
        }
      },
      done() {
        if (finished) return;
        finished = true;
        draw(true);
      },
    };
  };
}

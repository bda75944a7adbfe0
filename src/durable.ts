/** Making file-system changes durable. */
import { closeSync, fsyncSync, openSync } from 'node:fs';

/** fsync(2) of a directory: makes the entries created, renamed or removed in it durable. Throws on failure. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

import type { Command } from 'commander';

/** Where a command prints: commander's configured output (tests capture it), else stdout. */
export function writer(cmd: Command): (s: string) => void {
  return (s) => {
    const w = cmd.configureOutput().writeOut;
    if (w) w(s);
    else process.stdout.write(s);
  };
}

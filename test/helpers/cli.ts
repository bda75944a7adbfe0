/**
 * Runs `kmipd ARGS` in-process: the real program from buildProgram(), with every command's
 * output captured and exits turned into a result instead of process.exit.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, CommanderError } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { REPO_ROOT, newestTs } from './requirements.js';

export interface CliResult {
  out: string;
  err: string;
  exitCode: number;
}

export async function runKmipd(args: string[]): Promise<CliResult> {
  let out = '';
  let err = '';
  const program = buildProgram();
  // Subcommands copy exit and output settings when they are created, so set them on each.
  const prepare = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
    for (const sub of c.commands) prepare(sub);
  };
  prepare(program);
  try {
    await program.parseAsync(['node', 'kmipd', ...args]);
    return { out, err, exitCode: 0 };
  } catch (e) {
    if (e instanceof CommanderError) return { out, err, exitCode: e.exitCode };
    throw e;
  }
}


/**
 * Makes sure dist/ holds a build of the sources at least as new as `module` (e.g.
 * 'src/cli/trust.js'): builds with tsc when it is missing or older than any source file.
 * Returns a note for the test log, or undefined when nothing was built.
 */
export function ensureBuilt(module: string): string | undefined {
  const js = join(REPO_ROOT, 'dist', module);
  if (existsSync(js) && statSync(js).mtimeMs >= newestTs(join(REPO_ROOT, 'src'))) return undefined;
  const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
  // tsc still emits when other parts of the tree have type errors; the type check is a separate step
  return `built dist/ (tsc exited ${b.status}${b.status ? `: ${b.stdout.slice(0, 300)}` : ''})`;
}

/**
 * The arguments to run `node bin/kmipd ARGS` as a user would: tap adds its TypeScript and
 * process-info hooks to NODE_OPTIONS of every node child process, so the command goes through
 * `env -u NODE_OPTIONS`. Use as spawn('env', kmipdArgs([...])).
 */
export function kmipdArgs(args: string[]): string[] {
  return ['-u', 'NODE_OPTIONS', process.execPath, join(REPO_ROOT, 'bin', 'kmipd'), ...args];
}

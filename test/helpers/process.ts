import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newestTs } from './requirements.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'kmipd-child.ts');
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');


let distFresh: boolean | undefined;

/**
 * How to run the kmipd CLI in a child process: the compiled `bin/kmipd` when dist/ is at least
 * as new as every source file (always in CI, where `npm ci` builds it), else the sources
 * through the test process's own TypeScript loader (slower to start, same code).
 */
export function kmipdCommand(args: string[], env: NodeJS.ProcessEnv = {}): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  if (distFresh === undefined) {
    const main = join(ROOT, 'dist', 'src', 'cli', 'main.js');
    distFresh = existsSync(main) && statSync(main).mtimeMs >= newestTs(join(ROOT, 'src'));
  }
  // The admin listener is on by default (127.0.0.1:5697): tests start many servers at once, so
  // theirs is off unless a test asks for it (flag or variable).
  const merged: NodeJS.ProcessEnv = { KMIPD_ADMIN_PORT: 'off', ...process.env, ...env };
  if (distFresh) {
    // tap's process-info hook re-adds its loader to NODE_OPTIONS of every node child it sees
    // spawned; `env -u` drops it for the compiled code, which needs no loader.
    return { command: 'env', args: ['-u', 'NODE_OPTIONS', process.execPath, join(ROOT, 'bin', 'kmipd'), ...args], env: merged };
  }
  return { command: process.execPath, args: [...process.execArgv, CHILD, ...args], env: merged };
}

export interface KmipdProcess {
  child: ChildProcess;
  port: number;
  /** Every line the process wrote to stdout and stderr so far. */
  output: string[];
  exited: Promise<number | null>;
}

/** Starts `kmipd ARGS` from source and waits for its "kmipd listening" log line. */
export async function spawnKmipd(args: string[], env: NodeJS.ProcessEnv = {}): Promise<KmipdProcess> {
  const k = kmipdCommand(args, { KMIPD_LOG_LEVEL: 'info', ...env });
  const child = spawn(k.command, k.args, {
    env: k.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const onLine = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (!line) continue;
        output.push(line);
        if (line.includes('kmipd listening')) {
          try {
            resolve((JSON.parse(line) as { port: number }).port);
          } catch {
            reject(new Error(`unexpected listening line: ${line}`));
          }
        }
      }
    };
    child.stdout!.on('data', onLine);
    child.stderr!.on('data', onLine);
    void exited.then((code) => reject(new Error(`kmipd exited with ${code} before listening:\n${output.join('\n')}`)));
  });
  return { child, port, output, exited };
}

import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'kmipd-child.ts');

export interface KmipdProcess {
  child: ChildProcess;
  port: number;
  /** Every line the process wrote to stdout and stderr so far. */
  output: string[];
  exited: Promise<number | null>;
}

/** Starts `kmipd ARGS` from source and waits for its "kmipd listening" log line. */
export async function spawnKmipd(args: string[], env: NodeJS.ProcessEnv = {}): Promise<KmipdProcess> {
  const child = spawn(process.execPath, [...process.execArgv, CHILD, ...args], {
    env: { ...process.env, KMIPD_LOG_LEVEL: 'info', ...env },
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

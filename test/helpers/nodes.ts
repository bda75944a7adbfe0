/**
 * Helpers for tests with several kmipd processes (spawnKmipd): client credentials from a data
 * directory's CA, and key operations over short connections.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { Enums, Tag } from '../../src/spec/index.js';
import type { StructureNode, TtlvNode } from '../../src/ttlv/index.js';
import { KmipTestClient, type ClientCreds } from './client.js';
import type { ItemResult } from './engine.js';
import { createAesKey, get } from './kmip-requests.js';
import { spawnKmipd, type KmipdProcess } from './process.js';

export async function credsFor(dataDir: string, cn: string): Promise<ClientCreds> {
  const issued = await issueClientCert(loadCa(dataDir), { commonName: cn });
  return { ca: readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8'), cert: issued.certPem, key: issued.keyPem };
}

function find(n: StructureNode, tag: number): TtlvNode | undefined {
  for (const c of n.value) {
    if (c.tag === tag) return c;
    if (c.type === 'Structure') {
      const f = find(c, tag);
      if (f) return f;
    }
  }
  return undefined;
}

/** The key bytes in a Get response, or undefined when it failed. */
export function keyBytes(r: ItemResult): Buffer | undefined {
  if (r.status !== Enums.ResultStatus.Success || !r.payload) return undefined;
  const m = find(r.payload, Tag.KeyMaterial);
  return m?.type === 'ByteString' ? Buffer.from(m.value) : undefined;
}

export async function withClient<R>(port: number, creds: ClientCreds, fn: (c: KmipTestClient) => Promise<R>): Promise<R> {
  const c = await KmipTestClient.connect(port, creds);
  try {
    return await fn(c);
  } finally {
    c.socket.destroy();
  }
}

/** Creates an AES key on the node listening on `port`; returns its uid. */
export function createKey(port: number, creds: ClientCreds): Promise<string> {
  return withClient(port, creds, (c) => createAesKey(c));
}

/** Get on `port`: the result item. */
export function getKey(port: number, creds: ClientCreds, uid: string): Promise<ItemResult> {
  return withClient(port, creds, (c) => get(c, uid));
}

/** Stops a spawned kmipd: SIGTERM (graceful) or SIGKILL; resolves once it exited. */
export async function stopNode(p: KmipdProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  await p.exited;
}

/**
 * `serve(dir, extra)` starts `kmipd serve --data DIR` on loopback (ephemeral port) with `env`;
 * every node started is killed when the test ends.
 */
export function nodeLauncher(t: { teardown(fn: () => unknown): void }, env: NodeJS.ProcessEnv): (dir: string, extra?: string[]) => Promise<KmipdProcess> {
  const running: KmipdProcess[] = [];
  t.teardown(async () => {
    for (const p of running) await stopNode(p, 'SIGKILL');
  });
  return async (dir, extra = []) => {
    const p = await spawnKmipd(['serve', '--data', dir, '--host', '127.0.0.1', '--port', '0', ...extra], env);
    running.push(p);
    return p;
  };
}

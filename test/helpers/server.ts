/**
 * A real kmipd on loopback for integration tests: a fresh data directory, an ephemeral port,
 * and client certificates issued by the server's own CA.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import type { AccessPolicy } from '../../src/operations/context.js';
import { readManifest, writeManifest } from '../../src/server/datadir.js';
import { silentLogger } from '../../src/server/log.js';
import type { ListenerLimits } from '../../src/server/listener.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { ClientCreds } from './client.js';

export interface TestServer {
  server: RunningServer;
  port: number;
  dataDir: string;
  caPem: string;
  /** Client credentials for identity `cn`, issued once and cached. */
  creds(cn: string, keyType?: 'rsa' | 'ec'): Promise<ClientCreds>;
  stop(): Promise<void>;
}

/** `policy` is merged into the data directory's manifest (made by a first start) before the server starts. */
export async function startTestServer(opts: { limits?: Partial<ListenerLimits>; dataDir?: string; policy?: Partial<AccessPolicy> } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'kmipd-test-'));
  const startOpts: Parameters<typeof startServer>[0] = { dataDir, host: '127.0.0.1', port: 0, log: silentLogger() };
  if (opts.limits) startOpts.limits = opts.limits;
  if (opts.policy) {
    if (!readManifest(dataDir)) await (await startServer(startOpts)).stop();
    const m = readManifest(dataDir)!;
    writeManifest(dataDir, { ...m, policy: { ...m.policy, ...opts.policy } });
  }
  const server = await startServer(startOpts);
  const caPem = readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8');
  const cache = new Map<string, ClientCreds>();
  return {
    server,
    port: server.listener.address.port,
    dataDir,
    caPem,
    async creds(cn, keyType = 'rsa') {
      const k = `${cn}/${keyType}`;
      let c = cache.get(k);
      if (!c) {
        const issued = await issueClientCert(loadCa(dataDir), { commonName: cn, keyType });
        c = { ca: caPem, cert: issued.certPem, key: issued.keyPem };
        cache.set(k, c);
      }
      return c;
    },
    async stop() {
      await server.stop();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

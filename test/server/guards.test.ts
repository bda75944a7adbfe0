/**
 * Connection guards over real mutual TLS: the per-address and total connection limits (applied at
 * accept, before TLS; other addresses unaffected; counted in a metric without the address), and
 * the aggregated log of failed handshakes per peer (one line at once, one summary per window,
 * flushed at shutdown). Linux routes all of 127/8 to loopback, so clients bind 127.0.0.2, .3...
 * as their source address to be other peers.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Metrics } from '../../src/admin/metrics.js';
import { createCA } from '../../src/pki/ca.js';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import type { ListenerLimits } from '../../src/server/listener.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { discover, eventually } from '../helpers/kmip-requests.js';
import { Enums } from '../../src/spec/index.js';

type Line = Record<string, unknown> & { msg: string; level: number };

interface Guarded {
  server: RunningServer;
  port: number;
  lines: Line[];
  metrics: Metrics;
  creds: ClientCreds;
  stop(): Promise<void>;
}

async function start(host: string, limits: Partial<ListenerLimits>): Promise<Guarded> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-guards-'));
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Line) });
  const metrics = new Metrics();
  const server = await startServer({ dataDir, host, port: 0, log, limits, observer: metrics.observer() });
  const caPem = readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8');
  const issued = await issueClientCert(loadCa(dataDir), { commonName: 'vcenter', keyType: 'ec' });
  let stopped = false;
  return {
    server,
    port: server.listener.address.port,
    lines,
    metrics,
    creds: { ca: caPem, cert: issued.certPem, key: issued.keyPem },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Connection options with a source address (net's localAddress, which tls.connect passes on). */
function source(from: string): tls.ConnectionOptions {
  const o: tls.ConnectionOptions & { localAddress: string } = { localAddress: from };
  return o;
}

async function refusedCount(m: Metrics, reason: string): Promise<number> {
  const v = (await m.connectionsRefused.get()).values.find((x) => x.labels.reason === reason);
  return v?.value ?? 0;
}

/** A served connection from `from` (source address), checked with a Discover Versions. */
async function served(g: Guarded, from: string): Promise<KmipTestClient> {
  const c = await KmipTestClient.connect(g.port, g.creds, source(from));
  const r = await discover(c);
  if (r.status !== Enums.ResultStatus.Success) throw new Error(`Discover Versions failed from ${from}`);
  return c;
}

/** Whether a connection from `from` is closed before it gets anywhere. */
async function refused(g: Guarded, from: string): Promise<boolean> {
  try {
    const c = await KmipTestClient.connect(g.port, g.creds, source(from));
    c.socket.destroy();
    return false;
  } catch {
    return true;
  }
}

t.test('per-address limit: the extra connection of one address is closed at accept, other addresses are served', async (t) => {
  // bound to '::' (dual stack): IPv4 clients arrive as ::ffff:127.0.0.1 and are counted as 127.0.0.1
  const g = await start('::', { maxConnectionsPerAddress: 3, maxConnections: 100 });
  t.teardown(() => g.stop());
  const open = [await served(g, '127.0.0.1'), await served(g, '127.0.0.1'), await served(g, '127.0.0.1')];
  t.equal(g.server.listener.connectionsFrom('127.0.0.1'), 3, 'IPv4-mapped addresses counted as IPv4');
  t.equal(g.server.listener.connectionsFrom('::ffff:127.0.0.1'), 3);

  t.ok(await refused(g, '127.0.0.1'), 'the 4th connection from 127.0.0.1 is closed');
  t.equal(await refusedCount(g.metrics, 'per_address_limit'), 1, 'counted in kmipd_connections_refused_total{reason="per_address_limit"}');
  t.equal((await g.metrics.handshakes.get()).values.find((v) => v.labels.result === 'failed')?.value ?? 0, 0, 'no TLS handshake was attempted for it');

  const other = await served(g, '127.0.0.2');
  t.pass('a connection from 127.0.0.2 is served meanwhile');
  for (const c of open) t.equal((await discover(c)).status, Enums.ResultStatus.Success, 'the open connections keep working');

  t.ok(await refused(g, '127.0.0.1'), 'still full');
  const line = g.lines.filter((l) => l.msg === 'connection refused: too many connections from this address');
  t.equal(line.length, 1, 'the first refusal is logged at once, the second only counted');
  t.match(line[0], { level: 40, addr: '127.0.0.1', reason: 'per_address_limit', maxConnectionsPerAddress: 3 });

  await open.pop()!.close();
  t.ok(await eventually(async () => g.server.listener.connectionsFrom('127.0.0.1') === 2), 'the server sees the close');
  open.push(await served(g, '127.0.0.1'));
  t.pass('after one closed, the next connection from 127.0.0.1 is accepted');

  for (const c of [...open, other]) await c.close();
  t.ok(await eventually(async () => g.server.listener.connectionsFrom('127.0.0.1') === 0 && g.server.listener.connectionsFrom('127.0.0.2') === 0), 'counts go back to zero');

  await g.stop();
  const summary = g.lines.find((l) => l.addr === '127.0.0.1' && l.failures !== undefined);
  t.match(summary, { level: 40, failures: 1, reasons: { per_address_limit: 1 } }, 'the counted refusal is summarised at shutdown');
  t.match(summary?.msg, /^1 more failed handshakes from 127\.0\.0\.1 in \d+ s: reasons \{per_address_limit: 1\}$/);
});

t.test('total limit: connections beyond maxConnections are closed at accept, from any address', async (t) => {
  const g = await start('127.0.0.1', { maxConnections: 3, maxConnectionsPerAddress: 100 });
  t.teardown(() => g.stop());
  const open = [await served(g, '127.0.0.1'), await served(g, '127.0.0.2'), await served(g, '127.0.0.3')];
  t.ok(await refused(g, '127.0.0.4'), 'a 4th connection is closed');
  t.ok(await refused(g, '127.0.0.1'), 'also from an address with connections open');
  t.equal(await refusedCount(g.metrics, 'max_connections'), 2, 'counted in kmipd_connections_refused_total{reason="max_connections"}');
  t.equal(await refusedCount(g.metrics, 'per_address_limit'), 0);
  t.match(
    g.lines.filter((l) => l.msg === 'connection refused: too many connections open'),
    [
      { addr: '127.0.0.4', reason: 'max_connections', maxConnections: 3 },
      { addr: '127.0.0.1', reason: 'max_connections' },
    ],
    'logged per address',
  );
  for (const c of open) t.equal((await discover(c)).status, Enums.ResultStatus.Success, 'the open connections keep working');
  await open.shift()!.close();
  t.ok(await eventually(async () => g.server.listener.connectionsFrom('127.0.0.1') === 0));
  t.ok(
    await eventually(async () => {
      try {
        open.push(await served(g, '127.0.0.4'));
        return true;
      } catch {
        return false; // the TCP server may count the closed connection a moment longer
      }
    }),
    'after one closed, the next connection is accepted',
  );
  for (const c of open) await c.close();
});

/** A TLS client without a certificate from `from`, until the server has closed it. */
function noCertificate(port: number, ca: string, from: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...source(from) });
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
}

t.test('aggregated log: one line at once and one summary per peer; separate peers get separate lines', async (t) => {
  const g = await start('127.0.0.1', {});
  t.teardown(() => g.stop());
  const peers = { '127.0.0.1': 50, '127.0.0.2': 7, '127.0.0.3': 1 };
  for (const [addr, n] of Object.entries(peers)) {
    for (let i = 0; i < n; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => noCertificate(g.port, g.creds.ca, addr)));
    }
  }
  t.ok(await eventually(async () => Object.keys(peers).every((a) => g.server.listener.connectionsFrom(a) === 0)), 'all closed by the server');
  const failed = (await g.metrics.handshakeFailures.get()).values.find((v) => v.labels.reason === 'no_client_certificate')?.value;
  t.equal(failed, 58, 'every failure is still counted in the metrics');

  const immediate = g.lines.filter((l) => l.msg === 'TLS handshake failed');
  t.equal(immediate.length, 3, 'one line at once per peer, not one per failure');
  for (const addr of Object.keys(peers)) {
    t.match(
      immediate.filter((l) => l.addr === addr),
      [{ level: 40, reason: 'no_client_certificate', err: /certificate/ }],
      `${addr}: its first failure, with the reason`,
    );
  }
  t.equal(g.lines.filter((l) => l.failures !== undefined).length, 0, 'no summary before the window ends');
  t.equal(g.server.listener.failures.tracked, 3);

  await g.stop(); // flushes the open windows
  const summaries = g.lines.filter((l) => l.failures !== undefined);
  t.equal(summaries.length, 2, 'a summary for each peer with more than one failure');
  t.match(summaries.find((l) => l.addr === '127.0.0.1'), {
    level: 40,
    failures: 49,
    reasons: { no_client_certificate: 49 },
    msg: /^49 more failed handshakes from 127\.0\.0\.1 in \d+ s: reasons \{no_client_certificate: 49\}$/,
  });
  t.match(summaries.find((l) => l.addr === '127.0.0.2'), { failures: 6, msg: /^6 more failed handshakes from 127\.0\.0\.2 / });
  t.equal(g.server.listener.failures.tracked, 0);
});

t.test('an untrusted client certificate and a handshake timeout are aggregated with their reasons', async (t) => {
  const g = await start('127.0.0.1', { handshakeTimeoutMs: 300 });
  t.teardown(() => g.stop());
  const stranger = await createCA({ commonName: 'not the kmipd CA' });
  const untrusted = await issueClientCert(stranger, { commonName: 'vcenter', keyType: 'ec' });
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: g.port, ca: g.creds.ca, cert: untrusted.certPem, key: untrusted.keyPem, servername: 'localhost', maxVersion: 'TLSv1.2' });
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
  }
  // a client that connects and says nothing
  await new Promise<void>((resolve) => {
    const s = net.connect(g.port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
  t.ok(await eventually(async () => g.server.listener.connectionsFrom('127.0.0.1') === 0));
  t.match(
    g.lines.filter((l) => l.msg === 'TLS handshake failed'),
    [{ addr: '127.0.0.1', reason: 'untrusted_certificate' }],
    'only the first failure at once',
  );
  await g.stop();
  t.match(g.lines.find((l) => l.failures !== undefined), { addr: '127.0.0.1', failures: 3, reasons: { untrusted_certificate: 2, timeout: 1 } });
});

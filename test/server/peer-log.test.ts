/**
 * The per-peer aggregated log of failed handshakes (src/server/peer-log.ts) on its own: windows,
 * summaries, the bound on tracked addresses, address normalisation, its timer, and the reasons.
 * Over real TLS connections: test/server/guards.test.ts.
 */
import t from 'tap';
import { pino, type Logger } from 'pino';
import { PeerFailureLog, handshakeFailureReason, normalizeAddress } from '../../src/server/peer-log.js';

type Line = Record<string, unknown> & { msg: string };

function capture(): { lines: Line[]; log: Logger } {
  const lines: Line[] = [];
  return { lines, log: pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Line) }) };
}

t.test('first failure at once, the rest of the window in one summary, then a new window', async (t) => {
  const { lines, log } = capture();
  let now = 1_000_000;
  const p = new PeerFailureLog({ log, windowMs: 60_000, clock: () => now });
  t.teardown(() => p.close());
  p.record('10.0.0.5', 'untrusted_certificate', 'TLS handshake failed', { err: 'unknown ca' });
  t.match(lines, [{ level: 40, msg: 'TLS handshake failed', addr: '10.0.0.5', reason: 'untrusted_certificate', err: 'unknown ca' }]);
  for (let i = 0; i < 17; i++) {
    now += 1000;
    p.record('10.0.0.5', i % 2 ? 'timeout' : 'untrusted_certificate', 'TLS handshake failed');
  }
  p.sweep();
  t.equal(lines.length, 1, 'nothing more within the window');
  now = 1_000_000 + 60_000;
  p.sweep();
  t.equal(lines.length, 2);
  t.match(lines[1], {
    level: 40,
    addr: '10.0.0.5',
    failures: 17,
    seconds: 60,
    reasons: { untrusted_certificate: 9, timeout: 8 },
    msg: '17 more failed handshakes from 10.0.0.5 in 60 s: reasons {untrusted_certificate: 9, timeout: 8}',
  });
  t.equal(p.tracked, 0, 'the window is over: forgotten');
  now += 5000;
  p.record('10.0.0.5', 'timeout', 'TLS handshake failed');
  t.match(lines[2], { msg: 'TLS handshake failed', addr: '10.0.0.5', reason: 'timeout' }, 'a later failure opens a new window, logged at once');
  now += 60_000;
  p.sweep();
  t.equal(lines.length, 3, 'a window with a single failure needs no summary');
});

t.test('IPv4-mapped IPv6 is the IPv4 peer; a missing address is one "unknown" peer', async (t) => {
  t.equal(normalizeAddress('::ffff:10.0.0.5'), '10.0.0.5');
  t.equal(normalizeAddress('::FFFF:127.0.0.1'), '127.0.0.1');
  t.equal(normalizeAddress('2001:db8::1'), '2001:db8::1');
  t.equal(normalizeAddress('10.0.0.5'), '10.0.0.5');
  t.equal(normalizeAddress(undefined), undefined);
  const { lines, log } = capture();
  const p = new PeerFailureLog({ log });
  p.record('::ffff:10.0.0.5', 'timeout', 'x');
  p.record('10.0.0.5', 'timeout', 'x');
  p.record(undefined, 'connection_reset', 'x');
  t.equal(p.tracked, 2);
  p.close();
  t.match(lines, [{ addr: '10.0.0.5' }, { addr: 'unknown' }, { addr: '10.0.0.5', failures: 1 }]);
  t.equal(lines.length, 3);
});

t.test('the number of tracked addresses is bounded; the others are summarised together', async (t) => {
  const { lines, log } = capture();
  let now = 0;
  const p = new PeerFailureLog({ log, maxPeers: 5, windowMs: 60_000, clock: () => now });
  for (let round = 0; round < 3; round++) {
    for (let i = 1; i <= 1000; i++) p.record(`10.1.${i >> 8}.${i & 255}`, 'protocol', 'TLS handshake failed');
  }
  t.equal(p.tracked, 5, 'never more than maxPeers addresses');
  const atOnce = lines.filter((l) => l.msg === 'TLS handshake failed');
  t.equal(atOnce.length, 5, 'one line at once for each tracked address only');
  const full = lines.filter((l) => /^failures from more than 5 addresses at once/.test(l.msg));
  t.equal(full.length, 1, 'one line says the table is full');
  now = 60_000;
  p.sweep();
  const summaries = lines.filter((l) => l.failures !== undefined);
  t.equal(summaries.length, 6, 'five peers and the others');
  t.equal(summaries.filter((l) => l.failures === 2).length, 5);
  t.match(
    summaries.find((l) => l.addr === 'other peers'),
    { failures: 3 * 995, reasons: { protocol: 2985 }, msg: '2985 failed handshakes from other peers (more than 5 tracked) in 60 s: reasons {protocol: 2985}' },
  );
  t.equal(p.tracked, 0);
  p.record('10.9.9.9', 'protocol', 'TLS handshake failed');
  t.equal(lines.at(-1)?.addr, '10.9.9.9', 'after the window, new addresses are tracked again');
  p.close();
});

t.test('the timer writes the summary when the window ends; close() flushes what is pending', async (t) => {
  const { lines, log } = capture();
  const p = new PeerFailureLog({ log, windowMs: 50 });
  t.teardown(() => p.close());
  p.record('10.0.0.7', 'timeout', 'x');
  p.record('10.0.0.7', 'timeout', 'x');
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (lines.some((l) => l.failures === 1)) {
        clearInterval(check);
        resolve();
      }
    }, 10);
  });
  t.match(lines.at(-1), { addr: '10.0.0.7', failures: 1, reasons: { timeout: 1 } });
  t.equal(p.tracked, 0);

  const q = new PeerFailureLog({ log, windowMs: 3_600_000 });
  q.record('10.0.0.8', 'no_client_certificate', 'x');
  q.record('10.0.0.8', 'no_client_certificate', 'x');
  q.record('10.0.0.8', 'per_address_limit', 'x');
  q.close();
  t.match(lines.at(-1), { addr: '10.0.0.8', failures: 2, reasons: { no_client_certificate: 1, per_address_limit: 1 } }, 'flushed on close');
  t.equal(q.tracked, 0);
});

t.test('reasons of handshake failures, from a fixed list', async (t) => {
  const e = (message: string, code?: string): Error => Object.assign(new Error(message), code ? { code } : {});
  t.equal(handshakeFailureReason(e('client certificate not verified: UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY')), 'untrusted_certificate');
  t.equal(handshakeFailureReason(e('client certificate not verified: DEPTH_ZERO_SELF_SIGNED_CERT', 'DEPTH_ZERO_SELF_SIGNED_CERT')), 'untrusted_certificate');
  t.equal(handshakeFailureReason(e('client certificate not verified: CERT_HAS_EXPIRED', 'CERT_HAS_EXPIRED')), 'certificate_expired');
  t.equal(handshakeFailureReason(e('socket hang up', 'ECONNRESET')), 'connection_reset');
  t.equal(handshakeFailureReason(e('TLS handshake timeout', 'ERR_TLS_HANDSHAKE_TIMEOUT')), 'timeout');
  t.equal(handshakeFailureReason('no-certificate'), 'no_client_certificate');
  t.equal(handshakeFailureReason('refused'), 'client_certificate_refused');
});

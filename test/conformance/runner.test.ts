/**
 * The conformance runner end to end, on a handful of OASIS files against an in-process kmipd:
 * verdicts consistent with their details, a transcript altered where the server cannot match it
 * caught at the right exchange and tag path, and a server that hangs, hangs up or crashes
 * reported without stopping the run.
 */
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { finalLine, renderMarkdown, renderText, summaryTable } from '../../conformance/report.js';
import { runConformance, type RunSummary } from '../../conformance/runner.js';
import type { Session, Target } from '../../conformance/target.js';
import { need, vectorsDir } from '../helpers/requirements.js';
import { startTestServer } from '../helpers/server.js';

const OVH = 'ovh-kmip-go/kmiptest/testdata';
const SKLC = `${OVH}/v1.4/SKLC-M-1-14.xml`;
const PASSING = [SKLC, `${OVH}/v1.1/TC_161_11_Discover_Versions.xml`, `${OVH}/v1.2/TC_161_12_Discover_Versions.xml`];
const OTHERS = [`${OVH}/v1.4/TC-Q-CAP-1-14.xml`, `${OVH}/v1.4/TC-Q-PROF-1-14.xml`, `${OVH}/v1.4/TC-Q-RNGS-1-14.xml`, `${OVH}/v1.2/TC_122_12_Query_Vendor_Extensions.xml`];

function consistent(t: Test, s: RunSummary): void {
  t.equal(s.passed + s.failed + s.skipped + s.outOfScope, s.records.length, 'every record counted once');
  for (const r of s.records) {
    const res = r.result;
    if (r.outcome === 'passed') {
      t.ok(res?.passed && res.completed === res.exchanges && !res.failure, `${r.info.path}: passed with every exchange done`);
    } else if (r.outcome === 'failed') {
      const f = res?.failure;
      t.ok(f && !res.passed && f.detail !== '', `${r.info.path}: failed with a reason`);
      if (f?.kind === 'difference') t.match(f.differences[0]?.path, /^ResponseMessage\//, `${r.info.path}: the first difference has a tag path`);
    } else {
      t.ok(r.reason, `${r.info.path}: ${r.outcome} with a reason`);
    }
  }
  const line = finalLine(s);
  t.match(line, /^\d+ passed, \d+ failed, \d+ skipped$/);
  t.equal(renderText(s).split('\n').pop(), line, 'the text output ends with the summary line');
  t.match(renderMarkdown(s, { command: 'test', date: new Date(0), version: '0' }).trimEnd().split('\n').pop(), line);
  const total = summaryTable(s.records).rows.find((r) => r[0] === 'Total');
  t.equal(total?.[total.length - 1], s.records.some((r) => r.outcome !== 'out-of-scope') ? `${s.passed}/${s.failed}/${s.skipped}` : '-', 'the table total matches');
}

t.test('OVH set: SKLC-M-1-14, Discover Versions and Query against kmipd', async (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const s = await runConformance({ vectorsDir: v.dir, files: [...PASSING, ...OTHERS], jobs: 4 });
  consistent(t, s);
  for (const p of PASSING) {
    const r = s.records.find((x) => x.info.path === p);
    t.equal(r?.outcome, 'passed', `${p} passes`);
    if (r?.outcome !== 'passed') t.comment(JSON.stringify(r?.result?.failure));
  }
  t.equal(s.records.find((x) => x.info.path === SKLC)?.info.id, 'SKLC-M-1-14');
  t.equal(s.records.find((x) => x.info.path === SKLC)?.info.profile, 'SKLC');
});

t.test('an altered transcript is caught where it differs', async (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const original = readFileSync(join(v.dir, SKLC), 'utf8');
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-conformance-vectors-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const put = (name: string, text: string) => {
    const p = join(dir, OVH, 'v1.4', name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
    return `${OVH}/v1.4/${name}`;
  };
  // Each replacement hits the expected GetAttributes response (the second message pair).
  const state = original.replace('<AttributeValue type="Enumeration" value="PreActive"/>', '<AttributeValue type="Enumeration" value="Active"/>');
  const lengthInResponse = original.lastIndexOf('<AttributeValue type="Integer" value="256"/>');
  const length = original.slice(0, lengthInResponse) + '<AttributeValue type="Integer" value="128"/>' + original.slice(lengthInResponse + '<AttributeValue type="Integer" value="256"/>'.length);
  // The Destroy request left out: its response then follows another response.
  const lastRequest = original.lastIndexOf('<RequestMessage>');
  const orphan = original.slice(0, lastRequest) + original.slice(original.indexOf('</RequestMessage>', lastRequest) + '</RequestMessage>'.length);
  t.not(state, original);
  t.not(length, original);
  t.not(orphan, original);
  const files = {
    same: put('SKLC-M-1-14.xml', original),
    state: put('SKLC-M-1-14_state.xml', state),
    length: put('SKLC-M-1-14_length.xml', length),
    orphan: put('SKLC-M-1-14_orphan.xml', orphan),
  };
  const s = await runConformance({ vectorsDir: dir, files: Object.values(files), jobs: 2 });
  consistent(t, s);
  const rec = (p: string) => s.records.find((r) => r.info.path === p)!;
  t.equal(rec(files.same).outcome, 'passed', 'the unaltered copy passes');
  for (const [p, where] of [
    [files.state, /Attribute\[State\]\/AttributeValue$/],
    [files.length, /Attribute\[Cryptographic Length\]\/AttributeValue$/],
  ] as const) {
    const r = rec(p);
    t.equal(r.outcome, 'failed', `${p} fails`);
    t.equal(r.result?.failure?.kind, 'difference');
    t.equal(r.result?.failure?.exchange, 1, 'at the Get Attributes exchange');
    t.equal(r.result?.failure?.operation, 'GetAttributes');
    t.match(r.result?.failure?.differences[0]?.path, where);
  }
  const u = rec(files.orphan);
  t.equal(u.outcome, 'out-of-scope', 'a response that answers no request makes a defective transcript');
  t.match(u.reason, /defective transcript: the ResponseMessage at line \d+ follows no request/);
});

/** A TLS server with kmipd's certificates that misbehaves in the way given. */
async function misbehaving(kind: 'silent' | 'hang-up') {
  const ts = await startTestServer();
  const creds = await ts.creds('conformance-test');
  const pki = ts.server.state.pki;
  const server = tls.createServer({ cert: pki.serverCertPem, key: pki.serverKeyPem, ca: [pki.caCertPem], requestCert: true, rejectUnauthorized: true }, (sock) => {
    sock.on('error', () => {});
    sock.on('data', () => {
      if (kind === 'hang-up') sock.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    creds,
    async stop() {
      await new Promise<void>((r) => server.close(() => r()));
      await ts.stop();
    },
  };
}

function targetFor(port: number, creds: Session['creds'] extends (l: string) => Promise<infer C> ? C : never, crashAfterMs?: number): Target {
  return {
    describe: 'a misbehaving server',
    isolated: false,
    async open() {
      return {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        creds: async () => creds,
        crashed:
          crashAfterMs === undefined
            ? new Promise<never>(() => {})
            : new Promise<never>((_, reject) => setTimeout(() => reject(new Error('simulated crash')), crashAfterMs)),
        close: async () => {},
      };
    },
    async dispose() {},
  };
}

t.test('a server that hangs, hangs up or crashes is reported and the run goes on', async (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const files = [SKLC, `${OVH}/v1.1/TC_161_11_Discover_Versions.xml`];

  const silent = await misbehaving('silent');
  t.teardown(() => silent.stop());
  const started = Date.now();
  const hung = await runConformance({ vectorsDir: v.dir, files, target: targetFor(silent.port, silent.creds), timeoutMs: 1000 });
  consistent(t, hung);
  t.same(hung.records.map((r) => r.result?.failure?.kind), ['timeout', 'timeout'], 'both time out');
  t.ok(Date.now() - started < 8000, 'one second each, not forever');
  t.match(hung.records[0]?.result?.failure?.detail, /no response within 1 s/);

  const rude = await misbehaving('hang-up');
  t.teardown(() => rude.stop());
  const closed = await runConformance({ vectorsDir: v.dir, files, target: targetFor(rude.port, rude.creds), timeoutMs: 5000 });
  t.same(closed.records.map((r) => r.result?.failure?.kind), ['closed', 'closed'], 'a closed connection is reported');

  const crash = await runConformance({ vectorsDir: v.dir, files, target: targetFor(silent.port, silent.creds, 200), timeoutMs: 5000 });
  t.same(crash.records.map((r) => r.result?.failure?.kind), ['crash', 'crash'], 'a crash is reported');
  t.match(crash.records[0]?.result?.failure?.detail, /simulated crash/);
});

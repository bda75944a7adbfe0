import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PYTHON, need, pykmip } from '../helpers/requirements.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'pykmip_client.py');

type Step = { ok: true; value: unknown } | { ok: false; error: string; message: string };
type Result = Record<string, Step>;

async function scenario(name: string, cfg: Record<string, unknown>): Promise<Result> {
  const { stdout } = await run(PYTHON, [SCRIPT, name, JSON.stringify(cfg)], { timeout: 120_000 });
  return JSON.parse(stdout) as Result;
}

function value(t: Test, r: Result, step: string): unknown {
  const s = r[step];
  if (!s) {
    t.fail(`${step}: not run`);
    return undefined;
  }
  if (!s.ok) {
    t.fail(`${step}: ${s.error}: ${s.message}`);
    return undefined;
  }
  return s.value;
}

t.test('PyKMIP client against kmipd, every protocol version PyKMIP speaks', async (t) => {
  if (!need(t, pykmip())) return;
  let srv: TestServer | undefined;
  try {
    // PyKMIP 0.10 cannot decode some attributes kmipd sets on every key; the policy names its
    // identities so that an unnamed get_attributes leaves those out (docs/operating.md).
    srv = await startTestServer({ policy: { pykmipClients: ['pykmip-a', 'pykmip-b'] } });
    const dir = mkdtempSync(join(tmpdir(), 'kmipd-pykmip-'));
    const files: Record<string, string> = {};
    for (const cn of ['pykmip-a', 'pykmip-b']) {
      const c = await srv.creds(cn);
      writeFileSync(join(dir, `${cn}.crt`), c.cert);
      writeFileSync(join(dir, `${cn}.key`), c.key, { mode: 0o600 });
      files[cn] = cn;
    }
    writeFileSync(join(dir, 'ca.crt'), srv.caPem);
    const base = {
      port: srv.port,
      ca: join(dir, 'ca.crt'),
      cert: join(dir, 'pykmip-a.crt'),
      key: join(dir, 'pykmip-a.key'),
      cert_b: join(dir, 'pykmip-b.crt'),
      key_b: join(dir, 'pykmip-b.key'),
    };
    for (const version of ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0']) {
      await t.test(`KMIP ${version}`, async (t) => {
        const r = await scenario('lifecycle', { ...base, version, name: `interop-${version}` });
        if (version === '1.0') {
          t.equal(r.discover_versions?.ok, false, 'discover_versions does not exist in KMIP 1.0');
        } else {
          const versions = value(t, r, 'discover_versions') as string[] | undefined;
          t.ok(versions?.includes('1.1') && versions.includes('2.0'), `discover_versions lists ours: ${String(versions)}`);
        }
        const q = value(t, r, 'query') as { vendor: string; operations: string[] } | undefined;
        t.equal(q?.vendor, 'kmipd', 'query: vendor identification');
        t.ok(q?.operations.includes('CREATE') && q.operations.includes('LOCATE'), 'query: operations');
        const uid = value(t, r, 'create');
        t.type(uid, 'string', 'create returns a uid');
        t.same(value(t, r, 'get'), { alg: 'AES', len: 256, bytes: 32 }, 'get: a 256-bit AES key');
        const attrs = value(t, r, 'get_attributes') as Record<string, unknown> | undefined;
        t.equal(attrs?.['Cryptographic Algorithm'], 'AES', 'get_attributes: algorithm');
        t.equal(attrs?.State, 'PRE_ACTIVE', 'get_attributes: Pre-Active');
        const list = value(t, r, 'get_attribute_list') as string[] | undefined;
        t.ok(list?.includes('Cryptographic Length') && list.includes('State'), 'get_attribute_list');
        value(t, r, 'activate');
        t.equal(value(t, r, 'state_after_activate'), 'ACTIVE', 'activate');
        t.same(value(t, r, 'locate_by_name'), [uid], 'locate by name finds exactly the key');
        t.equal(r.destroy_active?.ok, false, 'destroy refused while Active');
        value(t, r, 'revoke');
        t.equal(value(t, r, 'destroy'), null, 'destroy after revoke');
        t.type(value(t, r, 'register'), 'string', 'register');
        t.equal(value(t, r, 'get_registered'), Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('hex'), 'registered key comes back byte for byte');
        const batch = value(t, r, 'batch') as { op: string; status: string }[] | undefined;
        t.same(
          batch?.map((b) => b.status),
          ['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS'],
          'a batch of four operations succeeds item by item',
        );
      });
    }
    await t.test('a second identity does not see the first one\'s keys', async (t) => {
      const r = await scenario('isolation', { ...base, version: '1.2' });
      t.type(value(t, r, 'create_a'), 'string');
      for (const s of ['get_b', 'attrs_b', 'destroy_b']) {
        const step = r[s];
        t.equal(step?.ok, false, `${s} fails`);
        if (step && !step.ok) t.match(step.message, /ITEM_NOT_FOUND|ItemNotFound|not found/i, `${s}: answered like a missing object`);
      }
      t.same(value(t, r, 'locate_b'), [], 'locate shows bob nothing');
      t.equal(value(t, r, 'locate_a'), true, 'alice still finds hers');
    });
  } finally {
    await srv?.stop();
  }
});

import t from 'tap';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Enums, Tag } from '../../src/spec/index.js';
import { decodeTtlv, encodeTtlv, parseHex, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { batchItems, itemResult } from '../helpers/engine.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { keyFlow, vcenterMessages, withUid } from '../helpers/vcenter.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'vcenter');
const RS = Enums.ResultStatus;

function fixture(name: string): Buffer {
  return parseHex(readFileSync(join(FIXTURES, `${name}.hex`), 'utf8'));
}

function headerVersion(resp: StructureNode): number[] {
  const h = resp.value[0] as StructureNode;
  const pv = h.value.find((n) => n.tag === Tag.ProtocolVersion) as StructureNode;
  return pv.value.map((n) => n.value as number);
}

function ids(resp: StructureNode): (Uint8Array | undefined)[] {
  return batchItems(resp).map((b) => b.value.find((n) => n.tag === Tag.UniqueBatchItemID)?.value as Uint8Array | undefined);
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

/** vCenter's way: a short connection that opens with DiscoverVersions, then the step. */
async function step(port: number, creds: ClientCreds, bytes: Buffer): Promise<StructureNode> {
  const c = await KmipTestClient.connect(port, creds);
  try {
    const dv = decodeTtlv(await c.sendBytes(encodeTtlv(vcenterMessages.discoverVersions))) as StructureNode;
    const versions = itemResult(batchItems(dv)[0]!).payload?.value.map((pv) => (pv as StructureNode).value.map((n) => n.value).join('.'));
    if (!versions?.includes('1.1') || headerVersion(dv).join('.') !== '1.1') throw new Error('DiscoverVersions did not answer in 1.1 with 1.1');
    return decodeTtlv(await c.sendBytes(bytes)) as StructureNode;
  } finally {
    await c.close();
  }
}

t.test('the fixtures are what the vCenter message builder produces', async (t) => {
  const flow = keyFlow('Virtual Machine', '4213d1b0-8f0a-4a8e-9bd4-0c6f2b1c7e55', 'vm-finance-01');
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.hex'));
  t.equal(files.length, new Set(flow.map(([n]) => n)).size, 'one fixture per distinct message');
  for (const [name, bytes] of flow) t.ok(fixture(name).equals(bytes), name);
});

t.test('a whole vCenter session, replayed from the fixtures over real TLS', async (t) => {
  let srv: TestServer = await startTestServer();
  const creds = await srv.creds('vcenter-01');
  const dataDir = srv.dataDir;
  t.teardown(async () => {
    await srv.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  // Health probe 1: a connection that only completes the TLS handshake and closes.
  await new Promise<void>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ...creds }, () => {
      s.end();
      resolve();
    });
    s.once('error', reject);
  });
  // Health probe 2: one connection with two DiscoverVersions.
  {
    const c = await KmipTestClient.connect(srv.port, creds);
    for (let i = 0; i < 2; i++) {
      const r = decodeTtlv(await c.sendBytes(fixture('discover-versions'))) as StructureNode;
      t.same(headerVersion(r), [1, 1], 'DiscoverVersions answered in 1.1');
      t.same(ids(r), [undefined], 'no batch item ID when none was sent');
    }
    await c.close();
  }
  // Registration: Query Server Information.
  {
    const r = await step(srv.port, creds, encodeTtlv(vcenterMessages.queryServerInformation));
    const item = itemResult(batchItems(r)[0]!);
    t.equal(item.status, RS.Success);
    t.equal(find(item.payload!, Tag.VendorIdentification)?.value, 'kmipd', 'Vendor Identification');
  }

  // A VM key and a host key, in parallel flows; the VM flow is replayed from the fixtures.
  const flows = {
    vm: { tags: { 'x-Identifier': '4213d1b0-8f0a-4a8e-9bd4-0c6f2b1c7e55', 'x-Component': 'Virtual Machine', 'x-Name': 'vm-finance-01' } },
    host: { tags: { 'x-Identifier': '30353134-3831-5a43-3231-303330303732', 'x-Component': 'ESXi Server', 'x-Name': 'esx-07.bank.example' } },
  };
  const keys: Record<string, { uid: string; material: Buffer }> = {};
  await Promise.all(
    (['vm', 'host'] as const).map(async (which) => {
      const tags = flows[which].tags;
      const msgs =
        which === 'vm'
          ? keyFlow('Virtual Machine', tags['x-Identifier'], tags['x-Name']).map(([n]): [string, Buffer] => [n, fixture(n)])
          : keyFlow('ESXi Server', tags['x-Identifier'], tags['x-Name']);
      let uid = '';
      for (const [name, raw] of msgs) {
        if (name === 'discover-versions') continue; // every step's connection opens with it
        const r = await step(srv.port, creds, uid ? withUid(raw, uid) : raw);
        t.same(headerVersion(r), [1, 1], `${which} ${name}: answered in 1.1`);
        const items = batchItems(r).map(itemResult);
        t.ok(items.every((i) => i.status === RS.Success), `${which} ${name}: success`);
        t.same(
          ids(r).map((b) => (b ? Buffer.from(b).toString('latin1') : b)),
          items.map((_, i) => `QLKC${String.fromCharCode(i + 1)}\0\0\0`),
          `${which} ${name}: QLKC IDs echoed`,
        );
        const p = items[0]!.payload!;
        if (name === 'create') uid = find(p, Tag.UniqueIdentifier)!.value as string;
        if (name.startsWith('get-attributes-x-')) t.notOk(find(p, Tag.Attribute), `${which} ${name}: absent → success with no attribute`);
        if (name.startsWith('add-attributes')) t.equal(items.length, 3, `${which}: three AddAttribute items in one message`);
        if (name === 'get-pre-active') {
          t.equal(find(p, Tag.KeyFormatType)?.value, Enums.KeyFormatType.Raw, `${which}: Raw key block`);
          t.equal(find(p, Tag.CryptographicAlgorithm)?.value, Enums.CryptographicAlgorithm.AES);
          t.equal(find(p, Tag.CryptographicLength)?.value, 256);
          keys[which] = { uid, material: Buffer.from(find(p, Tag.KeyMaterial)!.value as Uint8Array) };
        }
        if (name === 'get-attributes-State') t.equal(find(p, Tag.AttributeValue)?.value, Enums.State.PreActive, `${which}: Pre-Active before Activate`);
      }
    }),
  );
  t.not(keys.vm?.uid, keys.host?.uid, 'two distinct keys');

  // vCenter restarts (and so does kmipd): bursts of Get + GetAttributes(State) for every key.
  await srv.server.stop();
  srv = await startTestServer({ dataDir });
  await Promise.all(
    Object.entries(keys).flatMap(([which, k]) =>
      Array.from({ length: 5 }, async () => {
        const g = itemResult(batchItems(await step(srv.port, creds, withUid(fixture('get-pre-active'), k.uid)))[0]!);
        t.ok(Buffer.from(find(g.payload!, Tag.KeyMaterial)!.value as Uint8Array).equals(k.material), `${which}: same key after restart`);
        const s = itemResult(batchItems(await step(srv.port, creds, withUid(fixture('get-attributes-State'), k.uid)))[0]!);
        t.equal(find(s.payload!, Tag.AttributeValue)?.value, Enums.State.Active, `${which}: Active`);
      }),
    ),
  );
  // The tags vCenter set are readable.
  for (const [which, k] of Object.entries(keys)) {
    for (const [name, value] of Object.entries(flows[which as 'vm' | 'host'].tags)) {
      const r = itemResult(batchItems(await step(srv.port, creds, withUid(encodeTtlv(vcenterMessages.getAttribute(name)), k.uid)))[0]!);
      t.equal(find(r.payload!, Tag.AttributeValue)?.value, value, `${which}: ${name}`);
    }
  }
  // An unknown key.
  const unknown = itemResult(batchItems(await step(srv.port, creds, withUid(fixture('get-pre-active'), '11111111-2222-4333-8444-555555555555')))[0]!);
  t.equal(unknown.status, RS.OperationFailed);
  t.equal(unknown.reason, Enums.ResultReason.ItemNotFound, 'unknown key → Item Not Found');
});

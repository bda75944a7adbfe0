/**
 * Login tickets over real mutual TLS: a ticket outlives its connection, is bound to the
 * certificate that logged in, and a delegated ticket lets another client act within its Rights.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { batchItems, itemResult, requestMessage, type ItemResult } from '../helpers/engine.js';
import { startTestServer } from '../helpers/server.js';

const Op = Enums.Operation;
const OK = Enums.ResultStatus.Success;
const reason = (name: keyof typeof Enums.ResultReason) => Enums.ResultReason[name];

function ticketHeader(value: Buffer): TtlvNode[] {
  const ticket = T.struct(Tag.Ticket, [T.enum(Tag.TicketType, Enums.TicketType.Login), T.bytes(Tag.TicketValue, value)]);
  return [T.struct(Tag.Authentication, [T.struct(Tag.Credential, [T.enum(Tag.CredentialType, Enums.CredentialType.Ticket), T.struct(Tag.CredentialValue, [ticket])])])];
}

async function call(c: KmipTestClient, operation: number, payload: TtlvNode[], header: TtlvNode[] = []): Promise<ItemResult> {
  const resp = await c.send(requestMessage([{ operation, payload }], { version: '2.1', header }));
  const item = batchItems(resp)[0];
  if (!item) throw new Error('no batch item');
  return itemResult(item);
}

function ticketOf(r: ItemResult): Buffer {
  const ticket = r.payload?.value.find((c) => c.tag === Tag.Ticket) as StructureNode | undefined;
  const v = ticket?.value.find((c) => c.tag === Tag.TicketValue);
  if (v?.type !== 'ByteString') throw new Error(`no ticket (${r.status} ${r.reason} ${r.message})`);
  return Buffer.from(v.value);
}

t.test('Login tickets over mutual TLS', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const alice = await srv.creds('alice', 'rsa');
  const aliceOtherCert = await srv.creds('alice', 'ec'); // same name, another certificate
  const bob = await srv.creds('bob');
  const connect = async (creds: typeof alice) => {
    const c = await KmipTestClient.connect(srv.port, creds);
    t.teardown(() => c.close());
    return c;
  };

  const a1 = await connect(alice);
  let r = await call(a1, Op.Create, [
    T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
    T.struct(Tag.Attributes, [
      T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES),
      T.int(Tag.CryptographicLength, 256),
      T.int(Tag.CryptographicUsageMask, 12),
    ]),
  ]);
  t.equal(r.status, OK, r.message ?? '');
  const uid = (r.payload?.value.find((c) => c.tag === Tag.UniqueIdentifier)?.value ?? '') as string;
  const ticket = ticketOf(await call(a1, Op.Login, [T.int(Tag.RequestCount, 10)]));
  await a1.close();

  const a2 = await connect(alice);
  const getAttrs = [T.text(Tag.UniqueIdentifier, uid)];
  r = await call(a2, Op.GetAttributes, getAttrs, ticketHeader(ticket));
  t.equal(r.status, OK, `the ticket on a new connection of the same certificate: ${r.message ?? ''}`);

  const a3 = await connect(aliceOtherCert);
  r = await call(a3, Op.GetAttributes, getAttrs, ticketHeader(ticket));
  t.equal(r.reason, reason('InvalidTicket'), 'another certificate with the same name');

  const b1 = await connect(bob);
  r = await call(b1, Op.GetAttributes, getAttrs, ticketHeader(ticket));
  t.equal(r.reason, reason('InvalidTicket'), "bob presenting alice's ticket");

  // Alice delegates Get on her key; bob uses it on his own connection.
  const rights = T.struct(Tag.Rights, [T.struct(Tag.Right, [T.struct(Tag.Operations, [T.enum(Tag.Operation, Op.Get)]), T.struct(Tag.Objects, [T.text(Tag.UniqueIdentifier, uid)])])]);
  const delegated = ticketOf(await call(a2, Op.DelegatedLogin, [T.interval(Tag.LeaseTime, 300), T.int(Tag.RequestCount, 1), rights]));
  r = await call(b1, Op.Get, [T.text(Tag.UniqueIdentifier, uid)]);
  t.equal(r.reason, reason('ObjectNotFound'), 'without the ticket bob does not see her key (2.1: Object Not Found)');
  r = await call(b1, Op.Get, [T.text(Tag.UniqueIdentifier, uid)], ticketHeader(delegated));
  t.equal(r.status, OK, `with it he gets it: ${r.message ?? ''}`);
  r = await call(b1, Op.Get, [T.text(Tag.UniqueIdentifier, uid)], ticketHeader(delegated));
  t.equal(r.reason, reason('UsageLimitExceeded'), 'once');

  r = await call(a2, Op.Log, [T.text(Tag.LogMessage, 'rotating the backup key')], ticketHeader(ticket));
  t.equal(r.status, OK);
  r = await call(a2, Op.Logout, [], ticketHeader(ticket));
  t.equal(r.status, OK, r.message ?? '');
  r = await call(a2, Op.GetAttributes, getAttrs, ticketHeader(ticket));
  t.equal(r.reason, reason('InvalidTicket'), 'logged out');

  const records = readFileSync(join(srv.dataDir, 'audit', 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, string>);
  const bobsGet = records.find((x) => x.operation === 'Get' && x.result === 'Success');
  t.equal(bobsGet?.identity, 'bob', 'the audit record names the presenter');
  t.equal(bobsGet?.onBehalfOf, 'alice', 'and the delegating identity');
  t.equal(bobsGet?.object, uid);
  const log = records.find((x) => x.operation === 'Log');
  t.equal(log?.message, 'rotating the backup key');
  t.match(log?.fingerprint, /^[0-9a-f]{64}$/, 'with the certificate fingerprint');
  const raw = records.map((x) => JSON.stringify(x)).join('\n');
  for (const v of [ticket, delegated]) t.notOk(raw.includes(v.toString('hex')) || raw.includes(v.toString('base64')), 'no ticket value in the audit trail');
});

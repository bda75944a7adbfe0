import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, encodeTtlv, decodeTtlv, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { silentLogger } from '../../src/server/log.js';
import { TicketService } from '../../src/operations/tickets.js';
import { batchItems, itemResult, requestMessage, startEngine, type Engine, type ItemResult } from '../helpers/engine.js';
import { FAILED, OK, OP, createKey, get, reason, struct, uidNode, notFound } from './_keys.js';

const V = '2.1' as const;

function ticketNode(value: Buffer): StructureNode {
  return T.struct(Tag.Ticket, [T.enum(Tag.TicketType, Enums.TicketType.Login), T.bytes(Tag.TicketValue, value)]);
}

function ticketHeader(value: Buffer): TtlvNode[] {
  return [
    T.struct(Tag.Authentication, [
      T.struct(Tag.Credential, [T.enum(Tag.CredentialType, Enums.CredentialType.Ticket), T.struct(Tag.CredentialValue, [ticketNode(value)])]),
    ]),
  ];
}

function passwordHeader(username: string, password: string): TtlvNode[] {
  return [
    T.struct(Tag.Authentication, [
      T.struct(Tag.Credential, [
        T.enum(Tag.CredentialType, Enums.CredentialType.UsernameAndPassword),
        T.struct(Tag.CredentialValue, [T.text(Tag.Username, username), T.text(Tag.Password, password)]),
      ]),
    ]),
  ];
}

function ticketValueOf(r: ItemResult): Buffer {
  const ticket = struct(r.payload, Tag.Ticket);
  const type = ticket?.value.find((c) => c.tag === Tag.TicketType);
  const value = ticket?.value.find((c) => c.tag === Tag.TicketValue);
  if (type?.type !== 'Enumeration' || type.value !== Enums.TicketType.Login) throw new Error('no Ticket of type Login');
  if (value?.type !== 'ByteString') throw new Error('no Ticket Value');
  return Buffer.from(value.value);
}

async function login(engine: Engine, payload: TtlvNode[] = [], opts: { identity?: string; header?: TtlvNode[] } = {}): Promise<Buffer> {
  const r = await engine.call(OP.Login, payload, { version: V, ...opts });
  if (r.status !== OK) throw new Error(`Login failed: ${r.message}`);
  return ticketValueOf(r);
}

const query = (engine: Engine, ticket: Buffer, identity = 'alice') =>
  engine.call(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)], { version: V, identity, header: ticketHeader(ticket) });

function operationsOf(r: ItemResult): number[] {
  return (r.payload?.value ?? []).filter((c) => c.tag === Tag.Operation && c.type === 'Enumeration').map((c) => c.value as number);
}

function auditLines(engine: Engine): Record<string, unknown>[] {
  return readFileSync(join(engine.dataDir, 'audit', 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('Login: the ticket authenticates later requests, up to its Request Count', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const ticket = await login(engine, [T.interval(Tag.LeaseTime, 0), T.int(Tag.RequestCount, 2)]);
  t.equal(ticket.length, 32, '32 random bytes');
  let r = await query(engine, ticket);
  t.equal(r.status, OK, r.message ?? '');
  t.ok(operationsOf(r).includes(OP.Login) && operationsOf(r).includes(OP.Log), 'Query lists Login and Log');
  r = await query(engine, ticket);
  t.equal(r.status, OK, 'second request');
  r = await query(engine, ticket);
  t.equal(r.status, FAILED);
  t.equal(r.reason, reason('UsageLimitExceeded'), 'third request: Usage Limit Exceeded');

  // No Request Count: any number of requests within the lifetime.
  const open = await login(engine);
  for (let i = 0; i < 5; i++) t.equal((await query(engine, open)).status, OK);

  // Usage Limits on a ticket are refused, not ignored.
  r = await engine.call(OP.Login, [T.struct(Tag.UsageLimits, [T.long(Tag.UsageLimitsTotal, 10n), T.enum(Tag.UsageLimitsUnit, Enums.UsageLimitsUnit.Object)])], { version: V });
  t.equal(r.reason, reason('FeatureNotSupported'));
  r = await engine.call(OP.Login, [T.int(Tag.RequestCount, -1)], { version: V });
  t.equal(r.reason, reason('InvalidField'), 'negative Request Count');

  // KMIP 1.x has no Login.
  r = await engine.call(OP.Login, [], { version: '1.4' });
  t.equal(r.reason, reason('OperationNotSupported'));
});

t.test('Logout: the same ticket is refused afterwards with Invalid Ticket', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const ticket = await login(engine, [T.int(Tag.RequestCount, 3)]);
  t.equal((await query(engine, ticket)).status, OK);
  let r = await engine.call(OP.Logout, [ticketNode(ticket)], { version: V, header: ticketHeader(ticket) });
  t.equal(r.status, OK, r.message ?? '');
  r = await query(engine, ticket);
  t.equal(r.status, FAILED);
  t.equal(r.reason, reason('InvalidTicket'), 'logged out');
  r = await engine.call(OP.Logout, [ticketNode(ticket)], { version: V });
  t.equal(r.reason, reason('InvalidTicket'), 'a second Logout of it');

  // Logout without a payload ticket logs out the header's.
  const other = await login(engine);
  r = await engine.call(OP.Logout, [], { version: V, header: ticketHeader(other) });
  t.equal(r.status, OK, r.message ?? '');
  t.equal((await query(engine, other)).reason, reason('InvalidTicket'));
  r = await engine.call(OP.Logout, [], { version: V });
  t.equal(r.reason, reason('MissingData'), 'no ticket anywhere');

  // Only the ticket's identity may log it out.
  const alices = await login(engine);
  r = await engine.call(OP.Logout, [ticketNode(alices)], { version: V, identity: 'bob' });
  t.equal(r.reason, reason('InvalidTicket'), "bob cannot log out alice's ticket");
  t.equal((await query(engine, alices)).status, OK, 'and it still works for alice');
});

t.test('an expired ticket is refused', async (t) => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const engine = await startEngine({ clock: () => new Date(now), ticketLifetimeSeconds: 600 });
  t.teardown(() => engine.close());
  const asked = await login(engine, [T.interval(Tag.LeaseTime, 60)]);
  const max = await login(engine, [T.interval(Tag.LeaseTime, 0)]);
  const tooLong = await login(engine, [T.interval(Tag.LeaseTime, 86_400)]);
  now += 59_000;
  t.equal((await query(engine, asked)).status, OK, 'within its Lease Time');
  now += 1_000;
  t.equal((await query(engine, asked)).reason, reason('InvalidTicket'), 'at its Lease Time: expired');
  t.equal((await query(engine, max)).status, OK, 'Lease Time 0: the server maximum (600 s)');
  now += 540_000;
  t.equal((await query(engine, max)).reason, reason('InvalidTicket'), 'the maximum has passed');
  t.equal((await query(engine, tooLong)).reason, reason('InvalidTicket'), 'a longer Lease Time is cut to the maximum');
});

t.test("a ticket of identity A presented by identity B is refused; forged tickets are refused", async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const key = await createKey(engine, V, undefined, 'alice');
  const ticket = await login(engine, [], { identity: 'alice' });
  let r = await query(engine, ticket, 'bob');
  t.equal(r.status, FAILED);
  t.equal(r.reason, reason('InvalidTicket'), "bob presenting alice's ticket");
  r = await engine.call(OP.Get, [uidNode(key)], { version: V, identity: 'bob', header: ticketHeader(ticket) });
  t.equal(r.reason, reason('InvalidTicket'), 'no Get of her key either');
  r = await get(engine, key, V, [], 'alice');
  t.equal(r.status, OK, 'alice still reads it');

  // Same name, another certificate: the ticket is bound to the certificate that logged in.
  const send = async (fingerprint: string, header: TtlvNode[]) => {
    const req = requestMessage([{ operation: OP.Query, payload: [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)] }], { version: V, header });
    const out = await engine.executor.execute(encodeTtlv(req), { name: 'carol', fingerprint }, silentLogger());
    return itemResult(batchItems(decodeTtlv(out.response) as StructureNode)[0]!);
  };
  const req = requestMessage([{ operation: OP.Login, payload: [] }], { version: V });
  const out = await engine.executor.execute(encodeTtlv(req), { name: 'carol', fingerprint: 'aa'.repeat(32) }, silentLogger());
  const carols = ticketValueOf(itemResult(batchItems(decodeTtlv(out.response) as StructureNode)[0]!));
  t.equal((await send('aa'.repeat(32), ticketHeader(carols))).status, OK, 'her certificate');
  t.equal((await send('bb'.repeat(32), ticketHeader(carols))).reason, reason('InvalidTicket'), 'another certificate with her name');

  // Forged: random bytes, a flipped bit, a wrong length, a wrong Ticket Type.
  const { randomBytes } = await import('node:crypto');
  t.equal((await query(engine, randomBytes(32))).reason, reason('InvalidTicket'), 'random value');
  const flipped = Buffer.from(ticket);
  flipped[0] = flipped[0]! ^ 1;
  t.equal((await query(engine, flipped)).reason, reason('InvalidTicket'), 'one bit changed');
  t.equal((await query(engine, ticket.subarray(0, 16))).reason, reason('InvalidTicket'), 'truncated');
  const wrongType = [
    T.struct(Tag.Authentication, [
      T.struct(Tag.Credential, [
        T.enum(Tag.CredentialType, Enums.CredentialType.Ticket),
        T.struct(Tag.CredentialValue, [T.struct(Tag.Ticket, [T.enum(Tag.TicketType, 2), T.bytes(Tag.TicketValue, ticket)])]),
      ]),
    ]),
  ];
  r = await engine.call(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)], { version: V, header: wrongType });
  t.equal(r.reason, reason('InvalidTicket'), 'Ticket Type other than Login');
  t.equal((await query(engine, ticket)).status, OK, 'the genuine ticket still works');
});

t.test('with a configured password, Login needs it and the ticket stands for it', async (t) => {
  const engine = await startEngine({ auth: { username: 'vc', password: 's3cret' } });
  t.teardown(() => engine.close());
  let r = await engine.call(OP.Login, [], { version: V });
  t.equal(r.reason, reason('AuthenticationNotSuccessful'), 'Login without the password');
  r = await engine.call(OP.Login, [], { version: V, header: passwordHeader('vc', 'wrong') });
  t.equal(r.reason, reason('AuthenticationNotSuccessful'), 'Login with a wrong password');
  const ticket = await login(engine, [], { header: passwordHeader('vc', 's3cret') });
  t.equal((await query(engine, ticket)).status, OK, 'the ticket alone authenticates');
  t.equal((await query(engine, Buffer.alloc(32))).reason, reason('InvalidTicket'), 'a bad ticket does not');
});

t.test('Delegated Login: the delegate acts for the delegating identity within the Rights', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const k0 = await createKey(engine, V, undefined, 'alice');
  const k1 = await createKey(engine, V, undefined, 'alice');
  const bobs = await createKey(engine, V, undefined, 'bob');
  const rights = T.struct(Tag.Rights, [
    T.struct(Tag.Right, [T.struct(Tag.Operations, [T.enum(Tag.Operation, OP.Query), T.enum(Tag.Operation, OP.Log)])]),
    T.struct(Tag.Right, [T.struct(Tag.Operations, [T.enum(Tag.Operation, OP.GetAttributes), T.enum(Tag.Operation, OP.Locate)]), T.struct(Tag.Objects, [T.text(Tag.UniqueIdentifier, k0)])]),
  ]);
  let r = await engine.call(OP.DelegatedLogin, [T.int(Tag.RequestCount, 0), rights], { version: V, identity: 'alice' });
  t.equal(r.status, OK, r.message ?? '');
  const ticket = ticketValueOf(r);

  // Bob presents it: he acts for alice, only as the Rights say.
  const as = (operation: number, payload: TtlvNode[]) => engine.call(operation, payload, { version: V, identity: 'bob', header: ticketHeader(ticket) });
  r = await as(OP.GetAttributes, [uidNode(k0)]);
  t.equal(r.status, OK, `GetAttributes of the named object: ${r.message ?? ''}`);
  r = await as(OP.Get, [uidNode(k0)]);
  t.equal(r.reason, reason('NotAuthorised'), 'Get is not in the Rights');
  r = await as(OP.GetAttributes, [uidNode(k1)]);
  t.equal(r.reason, reason('NotAuthorised'), 'another of her objects is not in the Rights');
  r = await as(OP.GetAttributes, [uidNode(bobs)]);
  t.equal(r.reason, reason('NotAuthorised'), "bob's own object is not in the ticket either");
  r = await as(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)]);
  t.same(operationsOf(r).sort((a, b) => a - b), [OP.Query, OP.Locate, OP.GetAttributes, OP.Log].sort((a, b) => a - b), 'Query lists what the Rights grant');
  r = await as(OP.Locate, []);
  t.equal(r.status, OK, r.message ?? '');
  t.same(
    (r.payload?.value ?? []).filter((c) => c.tag === Tag.UniqueIdentifier).map((c) => c.value),
    [k0],
    'Locate shows only the objects the Rights name',
  );
  r = await as(OP.DelegatedLogin, [rights]);
  t.equal(r.reason, reason('NotAuthorised'), 'DelegatedLogin is not in the Rights');
  // Asynchronous Indicator: under a delegated ticket the Locate runs at once, inside the Rights
  // (a background run would not carry them).
  r = await engine.call(OP.Locate, [], { version: V, identity: 'bob', header: [T.bool(Tag.AsynchronousIndicator, true), ...ticketHeader(ticket)] });
  t.equal(r.status, OK, `answered synchronously: ${r.message ?? ''}`);
  t.same(
    (r.payload?.value ?? []).filter((c) => c.tag === Tag.UniqueIdentifier).map((c) => c.value),
    [k0],
    'an asynchronous-capable Locate under the ticket still shows only the objects the Rights name',
  );

  // Counted like a Login ticket.
  r = await engine.call(OP.DelegatedLogin, [T.int(Tag.RequestCount, 1), T.struct(Tag.Rights, [T.struct(Tag.Right, [])])], { version: V, identity: 'alice' });
  t.equal(r.status, OK, 'a Right with neither Operations nor Objects: everything alice may do');
  const once = ticketValueOf(r);
  r = await engine.call(OP.Get, [uidNode(k1)], { version: V, identity: 'bob', header: ticketHeader(once) });
  t.equal(r.status, OK, `bob gets alice's key with it: ${r.message ?? ''}`);
  r = await engine.call(OP.Get, [uidNode(k1)], { version: V, identity: 'bob', header: ticketHeader(once) });
  t.equal(r.reason, reason('UsageLimitExceeded'), 'once only');

  // Errors.
  r = await engine.call(OP.DelegatedLogin, [], { version: V, identity: 'alice' });
  t.equal(r.reason, reason('MissingData'), 'no Rights');
  r = await engine.call(OP.DelegatedLogin, [T.struct(Tag.Rights, [T.struct(Tag.Right, [T.struct(Tag.Objects, [T.text(Tag.UniqueIdentifier, bobs)])])])], { version: V, identity: 'alice' });
  t.equal(r.reason, notFound(V), 'alice cannot delegate an object she cannot see');
});

t.test('a delegated ticket never widens: Login under it keeps the Rights; it cannot delegate further', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const key = await createKey(engine, V, undefined, 'alice');
  const rights = T.struct(Tag.Rights, [T.struct(Tag.Right, [T.struct(Tag.Operations, [T.enum(Tag.Operation, OP.Login), T.enum(Tag.Operation, OP.DelegatedLogin), T.enum(Tag.Operation, OP.Query)])])]);
  let r = await engine.call(OP.DelegatedLogin, [rights], { version: V, identity: 'alice' });
  const delegated = ticketValueOf(r);
  r = await engine.call(OP.Login, [], { version: V, identity: 'bob', header: ticketHeader(delegated) });
  t.equal(r.status, OK, r.message ?? '');
  const derived = ticketValueOf(r);
  r = await engine.call(OP.Get, [uidNode(key)], { version: V, identity: 'bob', header: ticketHeader(derived) });
  t.equal(r.reason, reason('NotAuthorised'), 'the derived ticket has the same Rights');
  r = await engine.call(OP.DelegatedLogin, [T.struct(Tag.Rights, [T.struct(Tag.Right, [])])], { version: V, identity: 'bob', header: ticketHeader(delegated) });
  t.equal(r.reason, reason('NotAuthorised'), 'no delegation from a delegated ticket');

  // A delegate may log out its own ticket, never the delegating identity's others.
  const alices = await login(engine, [], { identity: 'alice' });
  const full = ticketValueOf(await engine.call(OP.DelegatedLogin, [T.struct(Tag.Rights, [T.struct(Tag.Right, [])])], { version: V, identity: 'alice' }));
  r = await engine.call(OP.Logout, [ticketNode(alices)], { version: V, identity: 'bob', header: ticketHeader(full) });
  t.equal(r.reason, reason('InvalidTicket'), "the delegate cannot log out alice's Login ticket");
  t.equal((await query(engine, alices, 'alice')).status, OK, 'which still works');
  r = await engine.call(OP.Logout, [ticketNode(full)], { version: V, identity: 'bob', header: ticketHeader(full) });
  t.equal(r.status, OK, 'its own ticket');
  t.equal((await query(engine, full, 'bob')).reason, reason('InvalidTicket'));
});

t.test('Log: the message lands in the audit trail; ticket values never do', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const ticket = await login(engine);
  const text = 'Registered a symmetric key.\u001b[31m "quoted"\nsecond line';
  let r = await engine.call(OP.Log, [T.text(Tag.LogMessage, text)], { version: V, header: ticketHeader(ticket) });
  t.equal(r.status, OK, r.message ?? '');
  t.same(r.payload?.value ?? [], [], 'an empty response payload');
  const delegated = ticketValueOf(
    await engine.call(OP.DelegatedLogin, [T.struct(Tag.Rights, [T.struct(Tag.Right, [T.struct(Tag.Operations, [T.enum(Tag.Operation, OP.Log)])])])], { version: V, identity: 'alice' }),
  );
  r = await engine.call(OP.Log, [T.text(Tag.LogMessage, 'from the delegate')], { version: V, identity: 'bob', header: ticketHeader(delegated) });
  t.equal(r.status, OK, r.message ?? '');

  r = await engine.call(OP.Log, [T.text(Tag.LogMessage, 'x'.repeat(1025))], { version: V });
  t.equal(r.reason, reason('InvalidField'), 'too long');
  r = await engine.call(OP.Log, [], { version: V });
  t.equal(r.reason, reason('MissingData'), 'no Log Message');

  const lines = auditLines(engine);
  const logs = lines.filter((l) => l.operation === 'Log' && l.result === 'Success');
  t.equal(logs.length, 2);
  t.equal(logs[0]?.message, text, 'the text, exactly');
  t.equal(logs[0]?.identity, 'alice');
  t.equal(logs[1]?.message, 'from the delegate');
  t.equal(logs[1]?.identity, 'bob', 'the record names who sent it');
  t.equal(logs[1]?.onBehalfOf, 'alice', 'and for whom');
  t.ok(lines.some((l) => l.operation === 'Login' && l.result === 'Success'), 'Login is audited');
  const raw = readFileSync(join(engine.dataDir, 'audit', 'audit.log'), 'utf8');
  for (const v of [ticket, delegated]) {
    t.notOk(raw.includes(v.toString('hex')) || raw.includes(v.toString('base64')) || raw.includes(v.toString('base64url')), 'no ticket value in the audit trail');
  }
  t.notOk(raw.includes('\u001b'), 'control characters are escaped');
});

t.test('TicketService bounds: tickets per identity', async (t) => {
  const s = new TicketService({ maxPerIdentity: 2, maxTotal: 3, maxLifetimeSeconds: 60 });
  const now = new Date('2030-01-01T00:00:00Z');
  const a1 = s.issue({ identity: 'a', delegated: false }, now);
  const a2 = s.issue({ identity: 'a', delegated: false }, now);
  const a3 = s.issue({ identity: 'a', delegated: false }, now);
  t.ok(a1.ok && a2.ok);
  t.same(a3.ok ? 'ok' : a3.reason, 'ServerLimitExceeded', 'a third for the same identity');
  const b1 = s.issue({ identity: 'b', delegated: false }, now);
  const b2 = s.issue({ identity: 'b', delegated: false }, now);
  t.ok(b1.ok);
  t.same(b2.ok ? 'ok' : b2.reason, 'ServerLimitExceeded', 'the server total');
  if (a1.ok) t.ok(s.revoke(a1.value, 'a', now), 'Logout frees a place');
  t.ok(s.issue({ identity: 'a', delegated: false }, now).ok);
  const later = new Date(now.getTime() + 61_000);
  t.ok(s.issue({ identity: 'b', delegated: false }, later).ok, 'expired tickets are swept when a limit is reached');
});

t.test('a batch with Undo refuses Login, Delegated Login and Logout (tickets are not journalled)', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const undo = [T.enum(Tag.BatchErrorContinuationOption, Enums.BatchErrorContinuationOption.Undo)];
  const r = await engine.call(OP.Login, [], { version: V, header: undo });
  t.equal(r.reason, reason('FeatureNotSupported'));
  const ticket = await login(engine);
  const out = await engine.request(
    [
      { operation: OP.Logout, payload: [ticketNode(ticket)] },
      { operation: OP.Get, payload: [uidNode('no-such-object')] },
    ],
    { version: V, header: undo },
  );
  t.equal(itemResult(batchItems(out)[0]!).reason, reason('FeatureNotSupported'));
  t.equal((await query(engine, ticket)).status, OK, 'the ticket was not logged out');
});

/**
 * Login, Delegated Login, Logout (KMIP 2.0/2.1 §6.1): tickets a client presents later as a
 * Ticket credential in the request header, instead of authenticating anew. What a ticket is,
 * how long it lives and whom it binds to: src/operations/tickets.ts.
 *
 * - Login: Lease Time (optional), Request Count (optional), Usage Limits (optional) -> Ticket.
 *   The client is authenticated like for any request (its TLS certificate, and the configured
 *   Username and Password when there is one: the executor); the ticket then acts for it alone.
 *   A Login made with a delegated ticket gets a ticket with the same Rights, living no longer
 *   and counting no further than that one: a ticket never widens what its holder may do.
 * - Delegated Login: the same, plus Rights (required): a ticket for another client, limited to
 *   the operations and objects the Rights name (a Right without Operations grants every
 *   operation; without Objects, every object of the delegating identity). The objects named must
 *   be ones the delegating identity can see. A delegated ticket cannot delegate further.
 * - Logout: Ticket (optional; the header's ticket when absent) -> nothing. Only the identity a
 *   ticket acts for may log it out (under a delegated ticket: only that ticket); anything else is
 *   Invalid Ticket, as for an unknown ticket.
 * - Usage Limits (for the ticket, or in a Right) are refused with Feature Not Supported rather
 *   than ignored: kmipd counts requests (Request Count), not bytes or objects, and a limit the
 *   client asked for must not silently fall away.
 * Ticket values never appear in logs or in the audit trail: a ticket is named by its id.
 */
import { KmipError } from '../codec/errors.js';
import { all, opt, optValue, req, reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { TICKET_BYTES, type Ticket, type TicketRight, type TicketService } from './tickets.js';

/** Operations and objects a delegated ticket's Rights may name in all. */
export const MAX_RIGHTS_ENTRIES = 4096;

function ticketService(ctx: OperationContext): TicketService {
  const t = ctx.session.tickets;
  if (!t) throw new KmipError('OperationNotSupported', 'this server issues no tickets');
  return t;
}

interface TicketTerms {
  leaseSeconds: number | undefined;
  requestCount: number | undefined;
}

function readTerms(payload: StructureNode): TicketTerms {
  const leaseSeconds = optValue(payload, Tag.LeaseTime, 'Interval');
  const requestCount = optValue(payload, Tag.RequestCount, 'Integer');
  if (requestCount !== undefined && requestCount < 0) throw new KmipError('InvalidField', 'Request Count must not be negative');
  if (opt(payload, Tag.UsageLimits, 'Structure')) {
    throw new KmipError('FeatureNotSupported', 'Usage Limits on a ticket are not supported; use Request Count and Lease Time');
  }
  return { leaseSeconds, requestCount };
}

function ticketNode(value: Buffer): TtlvNode {
  return T.struct(Tag.Ticket, [T.enum(Tag.TicketType, Enums.TicketType.Login), T.bytes(Tag.TicketValue, value)]);
}

function issue(ctx: OperationContext, terms: TicketTerms, delegated: boolean, rights: readonly TicketRight[] | undefined, parent: Ticket | undefined): TtlvNode[] {
  const tickets = ticketService(ctx);
  const r = tickets.issue(
    {
      identity: ctx.identity.name,
      fingerprint: ctx.session.presenter.fingerprint,
      delegated,
      ...(rights ? { rights } : {}),
      leaseSeconds: terms.leaseSeconds,
      requestCount: terms.requestCount,
      parent,
    },
    ctx.now(),
  );
  if (!r.ok) throw new KmipError(r.reason, r.message);
  const t = r.ticket;
  ctx.log.info(
    { ticket: t.id, identity: t.identity, delegated: t.delegated, expires: new Date(t.expiresAt).toISOString(), requests: t.remaining ?? null },
    delegated ? 'delegated ticket issued' : 'ticket issued',
  );
  return [ticketNode(r.value)];
}

export const loginHandler: OperationHandler = {
  operation: Enums.Operation.Login,
  name: 'Login',
  since: '2.0',
  async handle(ctx, payload) {
    const terms = readTerms(payload);
    const parent = ctx.session.ticket;
    if (parent?.delegated) return issue(ctx, terms, true, parent.rights, parent);
    return issue(ctx, terms, false, undefined, undefined);
  },
};

async function readRights(ctx: OperationContext, payload: StructureNode): Promise<TicketRight[]> {
  const rights = opt(payload, Tag.Rights, 'Structure');
  if (!rights) throw new KmipError('MissingData', 'Delegated Login needs Rights');
  const list = all(rights, Tag.Right, 'Structure');
  if (list.length === 0) throw new KmipError('MissingData', 'Rights holds no Right');
  let entries = 0;
  const out: TicketRight[] = [];
  for (const r of list) {
    if (opt(r, Tag.UsageLimits, 'Structure')) throw new KmipError('FeatureNotSupported', 'Usage Limits in a Right are not supported');
    const right: TicketRight = {};
    const ops = opt(r, Tag.Operations, 'Structure');
    if (ops) {
      const values = all(ops, Tag.Operation, 'Enumeration').map((o) => o.value);
      if (values.length === 0) throw new KmipError('InvalidField', 'Operations holds no Operation');
      entries += values.length;
      right.operations = new Set(values);
    }
    const objs = opt(r, Tag.Objects, 'Structure');
    if (objs) {
      const uids = all(objs, Tag.UniqueIdentifier, 'TextString').map((u) => u.value);
      if (uids.length === 0) throw new KmipError('InvalidField', 'Objects holds no Unique Identifier');
      entries += uids.length;
      if (entries > MAX_RIGHTS_ENTRIES) throw new KmipError('ServerLimitExceeded', `Rights may name ${MAX_RIGHTS_ENTRIES} operations and objects at most`);
      for (const uid of uids) await ctx.objects.find(uid, 'read'); // objects the delegating identity can see
      right.objects = new Set(uids);
    }
    if (entries > MAX_RIGHTS_ENTRIES) throw new KmipError('ServerLimitExceeded', `Rights may name ${MAX_RIGHTS_ENTRIES} operations and objects at most`);
    out.push(right);
  }
  return out;
}

export const delegatedLoginHandler: OperationHandler = {
  operation: Enums.Operation.DelegatedLogin,
  name: 'DelegatedLogin',
  since: '2.0',
  async handle(ctx, payload) {
    if (ctx.session.ticket?.delegated) throw new KmipError('NotAuthorised', 'a delegated ticket cannot delegate further');
    const terms = readTerms(payload);
    const rights = await readRights(ctx, payload);
    return issue(ctx, terms, true, rights, undefined);
  },
};

export const logoutHandler: OperationHandler = {
  operation: Enums.Operation.Logout,
  name: 'Logout',
  since: '2.0',
  async handle(ctx, payload) {
    const tickets = ticketService(ctx);
    const t = opt(payload, Tag.Ticket, 'Structure');
    let value: Uint8Array;
    if (t) {
      if (reqValue(t, Tag.TicketType, 'Enumeration') !== Enums.TicketType.Login) throw new KmipError('InvalidTicket', 'the Ticket Type is not Login');
      value = req(t, Tag.TicketValue, 'ByteString').value;
    } else {
      const presented = ctx.session.ticket;
      if (!presented) throw new KmipError('MissingData', 'no Ticket in the payload and none in the request header');
      // The header's ticket, already checked and counted.
      const revoked = tickets.revokeTicket(presented);
      if (revoked) ctx.log.info({ ticket: presented.id }, 'ticket logged out');
      return [];
    }
    if (value.length !== TICKET_BYTES) throw new KmipError('InvalidTicket', 'the ticket is not valid');
    // Under a delegated ticket the request acts for the delegating identity; it may log out that
    // ticket itself, never the delegating identity's other tickets.
    const presented = ctx.session.ticket;
    const revoked = tickets.revoke(value, ctx.identity.name, ctx.now(), presented?.delegated ? presented : undefined);
    if (!revoked) throw new KmipError('InvalidTicket', 'the ticket is not valid (unknown, expired, already logged out, or not this client\'s)');
    ctx.log.info({ ticket: revoked.id }, 'ticket logged out');
    return [];
  },
};

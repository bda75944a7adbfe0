/**
 * Login tickets (KMIP 2.0/2.1 Login, Delegated Login, Logout; Credential Type Ticket).
 *
 * A ticket is 32 random bytes from node:crypto handed to the client once, in the Login (or
 * Delegated Login) response. The server keeps only the SHA-256 of the value, with what the
 * ticket grants: the identity it acts for, the certificate it is bound to, its expiry, the
 * requests it has left and, for a delegated ticket, its Rights. A value the server did not
 * issue is found nowhere, so tickets cannot be forged; Logout deletes the entry, so a revoked
 * ticket is refused at once.
 *
 * - Lifetime: the client's Lease Time, at most `maxLifetimeSeconds` (the `ticketLifetimeSeconds`
 *   setting); Lease Time 0 or absent: that maximum. Every ticket expires.
 * - Request Count: the number of requests (messages) that may present the ticket; 0 or absent:
 *   no count, only the lifetime. A request past the count is refused with Usage Limit Exceeded,
 *   an expired, revoked or unknown ticket with Invalid Ticket.
 * - Binding: a Login ticket acts only for the identity that logged in, presented on a connection
 *   of that identity's certificate (same name, same certificate fingerprint when known). A
 *   ticket of identity A presented by identity B is an Invalid Ticket, exactly as an unknown one.
 * - Delegated tickets are the spec's way of handing a subset of one's rights to another client:
 *   whoever presents one (on any trusted TLS connection) acts as the delegating identity, only
 *   for the operations and objects its Rights name, and only within its lifetime and count.
 * - Held in memory, per node: a restart, or another node of a PostgreSQL cluster, does not know
 *   the ticket (Invalid Ticket; the client logs in again). Bounded: `maxPerIdentity` live
 *   tickets per identity, `maxTotal` in all (Server Limit Exceeded beyond).
 * - The value never leaves this module except in the response that issues it: logs and the audit
 *   trail name a ticket by `id`, a separate random handle.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const TICKET_BYTES = 32;
export const DEFAULT_TICKET_LIFETIME_SECONDS = 3600;
export const DEFAULT_MAX_TICKETS_PER_IDENTITY = 1024;
export const DEFAULT_MAX_TICKETS = 100_000;

/** One Right of a delegated ticket: absent Operations / Objects grant every operation / object. */
export interface TicketRight {
  operations?: ReadonlySet<number>;
  objects?: ReadonlySet<string>;
}

export interface Ticket {
  /** A random handle for logs and the audit trail (never the value). */
  readonly id: string;
  /** The identity whose objects and rights the ticket uses. */
  readonly identity: string;
  /** Login tickets: the certificate fingerprint of the connection that logged in, when known. */
  readonly fingerprint: string | undefined;
  readonly delegated: boolean;
  /** Delegated tickets: what they grant (the union of the Rights). */
  readonly rights: readonly TicketRight[] | undefined;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** Requests left; undefined: no Request Count. */
  remaining: number | undefined;
}

export interface IssueRequest {
  identity: string;
  fingerprint?: string | undefined;
  delegated: boolean;
  rights?: readonly TicketRight[];
  /** Requested Lease Time in seconds (0 or undefined: the maximum). */
  leaseSeconds?: number | undefined;
  /** Requested Request Count (0 or undefined: none). */
  requestCount?: number | undefined;
  /** A ticket issued under another ticket lives no longer and counts no further than it. */
  parent?: Ticket | undefined;
}

export type TicketFailure = { reason: 'InvalidTicket' | 'UsageLimitExceeded' | 'ServerLimitExceeded'; message: string };
export type TicketCheck = { ok: true; ticket: Ticket } | ({ ok: false } & TicketFailure);

export interface TicketServiceOptions {
  maxLifetimeSeconds?: number;
  maxPerIdentity?: number;
  maxTotal?: number;
}

/** The presenting connection, as far as tickets care. */
export interface Presenter {
  name: string;
  fingerprint?: string | undefined;
}

function digest(value: Uint8Array): string {
  return createHash('sha256').update(value).digest('hex');
}

export class TicketService {
  readonly maxLifetimeSeconds: number;
  private readonly maxPerIdentity: number;
  private readonly maxTotal: number;
  /** SHA-256 (hex) of the value -> ticket. */
  private readonly byDigest = new Map<string, Ticket>();
  private readonly perIdentity = new Map<string, number>();
  /** Each live ticket's digest, to revoke a ticket already looked up (Logout of the header's ticket). */
  private readonly digests = new WeakMap<Ticket, string>();
  private lastSweep = 0;

  constructor(opts: TicketServiceOptions = {}) {
    this.maxLifetimeSeconds = opts.maxLifetimeSeconds ?? DEFAULT_TICKET_LIFETIME_SECONDS;
    this.maxPerIdentity = opts.maxPerIdentity ?? DEFAULT_MAX_TICKETS_PER_IDENTITY;
    this.maxTotal = opts.maxTotal ?? DEFAULT_MAX_TICKETS;
    if (!(this.maxLifetimeSeconds > 0)) throw new RangeError('the ticket lifetime must be positive');
  }

  /** Live tickets (expired ones not yet swept included). */
  get size(): number {
    return this.byDigest.size;
  }

  /** Issues a ticket; returns its value (for the response only) and what it grants. */
  issue(req: IssueRequest, now: Date): { ok: true; value: Buffer; ticket: Ticket } | ({ ok: false } & TicketFailure) {
    const t = now.getTime();
    this.sweep(t, false);
    const held = this.perIdentity.get(req.identity) ?? 0;
    if (held >= this.maxPerIdentity || this.byDigest.size >= this.maxTotal) {
      this.sweep(t, true);
      if ((this.perIdentity.get(req.identity) ?? 0) >= this.maxPerIdentity) {
        return { ok: false, reason: 'ServerLimitExceeded', message: `identity already holds ${this.maxPerIdentity} live tickets; Logout the ones no longer used` };
      }
      if (this.byDigest.size >= this.maxTotal) return { ok: false, reason: 'ServerLimitExceeded', message: 'the server holds as many live tickets as it will' };
    }
    const maxMs = this.maxLifetimeSeconds * 1000;
    const askedMs = req.leaseSeconds !== undefined && req.leaseSeconds > 0 ? req.leaseSeconds * 1000 : maxMs;
    let expiresAt = t + Math.min(askedMs, maxMs);
    let remaining = req.requestCount !== undefined && req.requestCount > 0 ? req.requestCount : undefined;
    if (req.parent) {
      expiresAt = Math.min(expiresAt, req.parent.expiresAt);
      if (req.parent.remaining !== undefined) remaining = Math.min(remaining ?? Infinity, req.parent.remaining);
    }
    const value = randomBytes(TICKET_BYTES);
    const ticket: Ticket = {
      id: randomBytes(8).toString('hex'),
      identity: req.identity,
      fingerprint: req.delegated ? undefined : req.fingerprint,
      delegated: req.delegated,
      rights: req.rights,
      issuedAt: t,
      expiresAt,
      remaining,
    };
    const key = digest(value);
    this.byDigest.set(key, ticket);
    this.digests.set(ticket, key);
    this.perIdentity.set(req.identity, (this.perIdentity.get(req.identity) ?? 0) + 1);
    return { ok: true, value, ticket };
  }

  /**
   * Checks a presented ticket and, when it is good, counts one request against it. Every kind of
   * refusal but an exhausted Request Count is the same Invalid Ticket.
   */
  use(value: Uint8Array, presenter: Presenter, now: Date): TicketCheck {
    const invalid = { ok: false as const, reason: 'InvalidTicket' as const, message: 'the ticket is not valid (unknown, expired, logged out, or not issued to this client); Login again' };
    if (value.length !== TICKET_BYTES) return invalid;
    const key = digest(value);
    const ticket = this.byDigest.get(key);
    if (!ticket) return invalid;
    if (now.getTime() >= ticket.expiresAt) {
      this.remove(key, ticket);
      return invalid;
    }
    if (!ticket.delegated) {
      if (!sameText(ticket.identity, presenter.name)) return invalid;
      if (ticket.fingerprint !== undefined && (presenter.fingerprint === undefined || !sameText(ticket.fingerprint, presenter.fingerprint))) return invalid;
    }
    if (ticket.remaining !== undefined) {
      if (ticket.remaining <= 0) return { ok: false, reason: 'UsageLimitExceeded', message: 'the ticket has been used for as many requests as its Request Count allows; Login again' };
      ticket.remaining--;
    }
    return { ok: true, ticket };
  }

  /**
   * Logout: revokes the ticket with `value` if it acts for `identity` (and is `only`, when
   * given) and returns it; undefined (nothing revoked) for an unknown or expired ticket, and for
   * another identity's.
   */
  revoke(value: Uint8Array, identity: string, now: Date, only?: Ticket): Ticket | undefined {
    if (value.length !== TICKET_BYTES) return undefined;
    const key = digest(value);
    const ticket = this.byDigest.get(key);
    if (!ticket || !sameText(ticket.identity, identity)) return undefined;
    if (only !== undefined && ticket !== only) return undefined;
    this.remove(key, ticket);
    return now.getTime() < ticket.expiresAt ? ticket : undefined;
  }

  /** Revokes a ticket `use` returned (the one a request presented); false when it is gone already. */
  revokeTicket(ticket: Ticket): boolean {
    const key = this.digests.get(ticket);
    if (key === undefined || this.byDigest.get(key) !== ticket) return false;
    this.remove(key, ticket);
    return true;
  }

  private remove(key: string, ticket: Ticket): void {
    if (!this.byDigest.delete(key)) return;
    const n = (this.perIdentity.get(ticket.identity) ?? 1) - 1;
    if (n <= 0) this.perIdentity.delete(ticket.identity);
    else this.perIdentity.set(ticket.identity, n);
  }

  /** Drops expired tickets: at most once a second unless forced (a limit is near). */
  private sweep(t: number, force: boolean): void {
    if (!force && t - this.lastSweep < 1000) return;
    this.lastSweep = t;
    for (const [key, ticket] of this.byDigest) if (t >= ticket.expiresAt) this.remove(key, ticket);
  }
}

function sameText(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/** Whether a delegated ticket's Rights allow `operation`; the objects it may touch (undefined: any). */
export function rightsFor(rights: readonly TicketRight[], operation: number): { allowed: boolean; objects: ReadonlySet<string> | undefined } {
  const matching = rights.filter((r) => r.operations === undefined || r.operations.has(operation));
  if (matching.length === 0) return { allowed: false, objects: undefined };
  if (matching.some((r) => r.objects === undefined)) return { allowed: true, objects: undefined };
  const objects = new Set<string>();
  for (const r of matching) for (const o of r.objects ?? []) objects.add(o);
  return { allowed: true, objects };
}

/** The operations a delegated ticket grants (undefined: every operation). */
export function permittedOperations(rights: readonly TicketRight[]): ReadonlySet<number> | undefined {
  if (rights.some((r) => r.operations === undefined)) return undefined;
  const ops = new Set<number>();
  for (const r of rights) for (const o of r.operations ?? []) ops.add(o);
  return ops;
}

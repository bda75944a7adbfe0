import type { Logger } from 'pino';
import type { AuditEntry, AuditSink } from '../audit/types.js';
import { KmipError, type ResultReasonName } from '../codec/errors.js';
import {
  decodeRequest,
  reasonNameFor,
  peekProtocolVersion,
  responseItemNode,
  responseMessageNode,
  type RequestBatchItem,
  type RequestMessage,
  type ResponseBatchItem,
} from '../codec/message.js';
import type { KeyStore } from '../keystore/types.js';
import type { AccessPolicy, AsyncAnswer, ClientIdentity, OperationContext, OperationHandler, ServerInfo } from '../operations/context.js';
import { AsyncOperations, DEFAULT_ASYNC_LIMITS, type AsyncLimits } from './async.js';
import { permittedOperations, rightsFor, type Ticket, type TicketService } from '../operations/tickets.js';
import { ObjectService, type MaterialSealer } from '../operations/objects.js';
import { Enums, KMIP_VERSIONS, Tag, compareVersions, enumValueName, parseVersion, type KmipVersion } from '../spec/index.js';
import { decodeTtlv, encodeTtlv, TtlvError, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { opt, optValue } from '../codec/node.js';

export interface ExecutorOptions {
  store: KeyStore;
  sealer: MaterialSealer;
  policy: AccessPolicy;
  server: ServerInfo;
  handlers: readonly OperationHandler[];
  log: Logger;
  maxMessageSize: number;
  /**
   * When set, every request must carry this Username and Password credential, or a Ticket
   * credential from a Login that did (src/operations/tickets.ts).
   */
  requiredCredential?: { username: string; password: string };
  /** Login tickets (KMIP 2.x Login, Delegated Login, Logout, Ticket credentials); absent: none accepted. */
  tickets?: TicketService;
  clock?: () => Date;
  /**
   * The audit trail: every batch item's record is handed to it, and `execute` returns (so the
   * response is sent) only once it is durable. When it fails the request fails.
   */
  audit?: AuditSink;
  /** Told about every executed batch item (metrics, usage tracking); never changes a response. */
  observer?: ExecutorObserver;
  /** Asynchronous operations (src/server/async.ts); defaults DEFAULT_ASYNC_LIMITS. */
  async?: Partial<AsyncLimits>;
}

/**
 * The operations kmipd answers with Operation Pending when the client sets the Asynchronous
 * Indicator in a single-item request: Locate (a search over the whole keystore), Archive and
 * Recover (KMIP 1.4 §4.23: Recover "MAY need asynchronous polling"), as the OASIS test cases
 * TC-32 and TC-101 exercise them. Every other operation, and every multi-item batch (whose ID
 * Placeholder and Stop / Continue / Undo rules tie its items together), is answered
 * synchronously, as the server may always do (§6.8: the server decides).
 */
export const ASYNC_OPERATIONS: ReadonlySet<number> = new Set([Enums.Operation.Locate, Enums.Operation.Archive, Enums.Operation.Recover]);

/** The ID Placeholder state of one message. */
interface BatchState {
  placeholder: string | undefined;
  /** Set when a Locate left no placeholder: a later item without a uid then names no object (Item Not Found, TC-152). */
  locatedNothing: boolean;
}

/** One batch item as an observer sees it, once its response is final (audited). */
export interface ExecutedItem {
  operation: string;
  result: string;
  reason?: string;
  uid?: string;
  /** The client identity (for usage tracking; metrics must never use it as a label). */
  identity: string;
  seconds: number;
}

/** A small hook for metrics and usage tracking (src/admin); every method is optional. */
export interface ExecutorObserver {
  executed?(items: readonly ExecutedItem[]): void;
  /** The audit trail could not record a request (the request failed). */
  auditFailed?(): void;
}

/** What `run` leaves behind for the audit step: the decoded request and its object journal. */
interface RunState {
  msg?: RequestMessage;
  objects?: ObjectService;
  /** The delegating identity whose delegated ticket the request presented. */
  onBehalfOf?: string;
}

type AuthOutcome = { ok: true; effective: ClientIdentity; ticket: Ticket | undefined } | { ok: false; reason: ResultReasonName; message: string };

/** Who a batch item runs for: the TLS identity that presented the request, and its ticket, if any. */
interface ItemAuth {
  presenter: ClientIdentity;
  ticket: Ticket | undefined;
  /** The operations a delegated ticket permits (undefined: no restriction). */
  permitted: ReadonlySet<number> | undefined;
}

export interface ItemLog {
  operation: string;
  uid?: string;
  result: string;
  reason?: string;
  /** Client text for the audit record (Log); never put in the server log. */
  message?: string;
  /** How long the handler took, in ms (absent for items answered without running one). */
  ms?: number;
}

export interface ExecuteResult {
  response: Buffer;
  version: string;
  items: ItemLog[];
}

/**
 * Every batch rule in one place: version, Batch Count, Unique Batch Item ID echo, Batch Error
 * Continuation (Stop / Continue / Undo), Batch Order, ID Placeholder, Maximum Response Size,
 * Asynchronous Indicator, Authentication. Handlers see one item at a time.
 */
export class Executor {
  private readonly handlers = new Map<number, OperationHandler>();
  private readonly clock: () => Date;

  private readonly serverInfo: ServerInfo;
  /** The asynchronous operations this node accepted (Operation Pending), per client identity. */
  readonly pending: AsyncOperations;

  constructor(private readonly opts: ExecutorOptions) {
    this.pending = new AsyncOperations({ ...DEFAULT_ASYNC_LIMITS, ...opts.async });
    for (const h of opts.handlers) this.handlers.set(h.operation, h);
    this.serverInfo = { ...opts.server, handlers: [...this.handlers.values()] };
    this.clock = opts.clock ?? (() => new Date());
  }

  get registered(): readonly OperationHandler[] {
    return [...this.handlers.values()];
  }

  /** The identities trusted as upstream key servers (Put, Notify): replaced on reload (src/admin/reload.ts). */
  get upstreams(): readonly string[] {
    return this.serverInfo.upstreams ?? [];
  }

  set upstreams(names: readonly string[]) {
    this.serverInfo.upstreams = [...names];
  }

  /**
   * Decodes one framed request and returns the encoded response. Never throws for bad input.
   * With an audit sink, returns only after the request's records are durable; when they cannot
   * be written, the message's changes are undone (best effort) and every item fails with General
   * Failure "audit trail unavailable": no operation is answered unaudited.
   */
  async execute(frame: Buffer, identity: ClientIdentity, log: Logger): Promise<ExecuteResult> {
    const observer = this.opts.observer;
    if (!observer?.executed) return this.executeAudited(frame, identity, log);
    const started = performance.now();
    const r = await this.executeAudited(frame, identity, log);
    const total = (performance.now() - started) / 1000;
    try {
      observer.executed(
        r.items.map((it): ExecutedItem => {
          const e: ExecutedItem = { operation: it.operation, result: it.result, identity: identity.name, seconds: it.ms !== undefined ? it.ms / 1000 : total };
          if (it.reason !== undefined) e.reason = it.reason;
          if (it.uid !== undefined) e.uid = it.uid;
          return e;
        }),
      );
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'executor observer failed');
    }
    return r;
  }

  private async executeAudited(frame: Buffer, identity: ClientIdentity, log: Logger): Promise<ExecuteResult> {
    const held: RunState = {};
    const r = await this.run(frame, identity, log, held);
    const audit = this.opts.audit;
    if (audit) {
      const time = this.clock();
      const entries = r.items.map(
        (it): AuditEntry => ({
          kind: 'kmip',
          time,
          identity: identity.name,
          fingerprint: identity.fingerprint,
          address: identity.address,
          version: r.version,
          operation: it.operation,
          object: it.operation === 'Locate' ? undefined : it.uid, // a search names no object
          result: it.result,
          reason: it.reason,
          onBehalfOf: held.onBehalfOf,
          message: it.message,
        }),
      );
      try {
        await audit.record(entries);
      } catch (e) {
        log.error({ err: (e as Error).message, items: r.items }, 'audit trail unavailable; the request fails and its changes are undone');
        this.opts.observer?.auditFailed?.();
        try {
          await held.objects?.undo();
        } catch (u) {
          log.error({ err: u }, 'undoing an unaudited request failed');
        }
        const message = 'audit trail unavailable';
        if (held.msg) return this.failItems(held.msg, r.version as KmipVersion, 'GeneralFailure', message);
        return this.failMessage(undefined, 'GeneralFailure', message);
      }
    }
    held.objects?.commit();
    return r;
  }

  private async run(frame: Buffer, identity: ClientIdentity, log: Logger, held: RunState): Promise<ExecuteResult> {
    let tree: TtlvNode;
    try {
      tree = decodeTtlv(frame, { maxMessageSize: this.opts.maxMessageSize });
    } catch (e) {
      if (!(e instanceof TtlvError)) throw e;
      log.info({ err: e.message }, 'undecodable request');
      const v = peekVersionBytes(frame);
      return this.failMessage(v, 'InvalidMessage', `the request is not valid TTLV: ${e.message}`);
    }
    const pv = peekProtocolVersion(tree);
    let msg: RequestMessage;
    try {
      msg = decodeRequest(tree);
    } catch (e) {
      if (!(e instanceof KmipError)) throw e;
      return this.failMessage(pv, e.reason, e.message);
    }
    held.msg = msg;
    const h = msg.header;
    const version = h.version;
    if (!version || !this.opts.server.versions.includes(version)) {
      const reason: ResultReasonName = h.major >= 2 ? 'UnsupportedProtocolVersion' : 'InvalidMessage';
      return this.failMessage(pv, reason, `protocol version ${h.major}.${h.minor} is not supported; use Discover Versions`);
    }
    if (h.batchCount !== msg.items.length) {
      return this.failMessage(pv, 'InvalidMessage', `Batch Count says ${h.batchCount} but the message holds ${msg.items.length} batch items`);
    }
    if (msg.items.length === 0) return this.failMessage(pv, 'InvalidMessage', 'the message holds no batch item');
    const auth = this.authenticate(msg, identity, version, log);
    if (!auth.ok) return this.failItems(msg, version, auth.reason, auth.message);
    const ticket = auth.ticket;
    if (auth.effective.name !== identity.name) held.onBehalfOf = auth.effective.name;
    if (!h.batchOrder && msg.items.length > 1) {
      // Batch Order Option false lets the server reorder; executing in order is always permitted.
    }
    if (h.batchErrorContinuation === 'Undo' && !this.undoable(msg)) {
      return this.failItems(msg, version, 'FeatureNotSupported', 'Undo is not possible for a batch with operations that cannot be rolled back (Query, Discover Versions, Login, Delegated Login, Logout, Cancel)');
    }

    // Not under a delegated ticket: its Rights restrict the request's objects, which a
    // background run (with a journal of its own) would not see.
    if (h.asynchronousIndicator && msg.items.length === 1 && !ticket?.rights) {
      const deferred = this.defer(msg.items[0]!, version, auth.effective, log);
      if (deferred) return this.respond(pv, version, [deferred.result], [deferred.log], h.maximumResponseSize);
    }

    const objects = new ObjectService(this.opts.store, this.opts.sealer, auth.effective, this.opts.policy);
    held.objects = objects;
    const itemAuth: ItemAuth = { presenter: identity, ticket, permitted: ticket?.rights ? permittedOperations(ticket.rights) : undefined };
    const batch: BatchState = { placeholder: undefined, locatedNothing: false };
    const results: ResponseBatchItem[] = [];
    const logs: ItemLog[] = [];
    for (const item of msg.items) {
      const { result, itemLog, failed } = await this.runItem(item, version, auth.effective, log, objects, batch, itemAuth);
      results.push(result);
      logs.push(itemLog);
      if (!failed) continue;
      if (h.batchErrorContinuation === 'Undo') {
        await objects.undo();
        // An undone item keeps its Response Payload: the Response Payload is present unless
        // the item failed (KMIP 1.4 §7.2, 2.1 §8 Response Batch Item; BL-M-2-21 shows the
        // undone Activate with its Unique Identifier).
        for (const r of results) {
          if (r.status === 'Success') r.status = 'OperationUndone';
        }
        for (const l of logs) {
          if (l.result === 'Success') l.result = 'OperationUndone';
        }
        break;
      }
      // Stop: the remaining items are not executed and not answered (KMIP §"Batch Error
      // Continuation Option": the response holds only the items processed).
      if (h.batchErrorContinuation === 'Stop') break;
    }
    return this.respond(pv, version, results, logs, h.maximumResponseSize);
  }

  /**
   * Executes one batch item against `objects` (the message's journal) and `batch` (its ID
   * Placeholder). Never throws: a failure is the item's Operation Failed result.
   */
  private async runItem(
    item: RequestBatchItem,
    version: KmipVersion,
    identity: ClientIdentity,
    log: Logger,
    objects: ObjectService,
    batch: BatchState,
    auth: ItemAuth = { presenter: identity, ticket: undefined, permitted: undefined },
  ): Promise<{ result: ResponseBatchItem; itemLog: ItemLog; failed: boolean }> {
    const handler = this.handlers.get(item.operation);
    const base: ResponseBatchItem = { status: 'Success', operation: item.operation };
    if (item.uniqueBatchItemId) base.uniqueBatchItemId = item.uniqueBatchItemId;
    const opName = enumValueName('Operation', item.operation) ?? `0x${item.operation.toString(16)}`;
    const itemLog: ItemLog = { operation: opName, result: 'Success' };
    const itemStarted = performance.now();
    let target: string | undefined; // the object the item named, for the record of a failure
    let answer: AsyncAnswer | undefined;
    let result: ResponseBatchItem;
    let failed = false;
    try {
      if (!handler || compareVersions(handler.since, version) > 0) {
        throw new KmipError('OperationNotSupported', `operation ${opName} is not supported${handler ? ` in KMIP ${version}` : ''}`);
      }
      checkMessageExtension(item);
      if (auth.ticket?.rights) {
        // A delegated ticket: only the operations and objects its Rights name.
        const r = rightsFor(auth.ticket.rights, item.operation);
        if (!r.allowed) throw new KmipError('NotAuthorised', `the ticket's Rights do not include ${opName}`);
        objects.restrictTo(r.objects);
      }
      let opLog: Logger | undefined;
      const pending = this.pending;
      const ctx: OperationContext = {
        identity,
        version,
        // Built on first use: most items never log, and a child logger per item costs.
        get log(): Logger {
          return (opLog ??= log.child({ op: opName }));
        },
        objects,
        server: this.serverInfo,
        now: this.clock,
        idPlaceholder: batch.placeholder,
        setIdPlaceholder: (uid) => {
          batch.placeholder = uid;
        },
        uidOrPlaceholder: (payload: StructureNode) => {
          const uid = optValue(payload, Tag.UniqueIdentifier, 'TextString');
          if (uid !== undefined) return (target = uid);
          if (batch.placeholder !== undefined) return (target = batch.placeholder);
          if (batch.locatedNothing) throw new KmipError('ItemNotFound', 'the Locate before this item did not find exactly one object');
          throw new KmipError('MissingData', 'no Unique Identifier and no ID Placeholder from an earlier batch item');
        },
        session: { tickets: this.opts.tickets, ticket: auth.ticket, presenter: auth.presenter },
        permittedOperations: auth.permitted,
        auditMessage: (text) => {
          itemLog.message = text;
        },
        async: {
          poll: (value) => pending.poll(identity.name, value),
          cancel: (value) => pending.cancel(identity.name, value),
        },
        answerAs: (a) => {
          answer = a;
        },
      };
      const payload = await handler.handle(ctx, item.payload);
      // ID Placeholder: the uid an item produced. A Locate that found several (or none)
      // leaves no placeholder (KMIP 1.4 §4.9, 2.1 §6.1.27).
      const uids = payload.filter((c) => c.tag === Tag.UniqueIdentifier);
      const uid = uids[0];
      if (uid?.type === 'TextString') itemLog.uid = uid.value;
      if (uids.length === 1 && uid?.type === 'TextString') {
        batch.placeholder = uid.value;
        batch.locatedNothing = false;
      } else if (item.operation === Enums.Operation.Locate) {
        batch.placeholder = undefined;
        batch.locatedNothing = true;
      }
      if (answer) {
        // Poll: the pending operation's own response item.
        result = { ...base, operation: answer.operation, status: answer.status };
        if (answer.reason !== undefined) result.reason = answer.reason;
        if (answer.message !== undefined) result.message = answer.message;
        if (answer.correlation !== undefined) result.asynchronousCorrelationValue = answer.correlation;
        if (answer.status === 'Success') result.payload = payload;
        itemLog.result = answer.status;
        if (answer.reason !== undefined) itemLog.reason = answer.reason;
      } else {
        result = { ...base, payload };
      }
    } catch (e) {
      const { reason, message } = this.toKmipError(e, log, opName);
      itemLog.result = 'OperationFailed';
      itemLog.reason = reasonNameFor(reason, version); // as the client reads it (1.x fallback)
      if (itemLog.uid === undefined && target !== undefined) itemLog.uid = target;
      result = { ...base, status: 'OperationFailed', reason, message };
      failed = true;
    }
    itemLog.ms = performance.now() - itemStarted;
    return { result, itemLog, failed };
  }

  /**
   * The Operation Pending answer for a single-item request whose client accepts asynchronous
   * responses, when the operation is one kmipd runs asynchronously (ASYNC_OPERATIONS) and the
   * client has room in the table; undefined: run it now.
   */
  private defer(item: RequestBatchItem, version: KmipVersion, identity: ClientIdentity, log: Logger): { result: ResponseBatchItem; log: ItemLog } | undefined {
    if (!ASYNC_OPERATIONS.has(item.operation)) return undefined;
    const handler = this.handlers.get(item.operation);
    if (!handler || compareVersions(handler.since, version) > 0) return undefined;
    const value = this.pending.add(identity.name, item.operation, () => this.runDetached(item, version, identity, log));
    if (!value) return undefined;
    const result: ResponseBatchItem = { operation: item.operation, status: 'OperationPending', asynchronousCorrelationValue: value };
    if (item.uniqueBatchItemId) result.uniqueBatchItemId = item.uniqueBatchItemId;
    const itemLog: ItemLog = { operation: handler.name, result: 'OperationPending' };
    const uid = optValue(item.payload, Tag.UniqueIdentifier, 'TextString');
    if (uid !== undefined) itemLog.uid = uid;
    return { result, log: itemLog };
  }

  /**
   * Runs a deferred item in the background, audited on its own (the Operation Pending answer
   * was audited with its request): its changes stand only once its record is durable.
   */
  private async runDetached(item: RequestBatchItem, version: KmipVersion, identity: ClientIdentity, log: Logger): Promise<ResponseBatchItem> {
    const objects = new ObjectService(this.opts.store, this.opts.sealer, identity, this.opts.policy);
    const { result, itemLog } = await this.runItem(item, version, identity, log, objects, { placeholder: undefined, locatedNothing: false });
    delete result.uniqueBatchItemId; // Poll answers with its own
    const audit = this.opts.audit;
    if (audit) {
      try {
        await audit.record([
          {
            kind: 'kmip',
            time: this.clock(),
            identity: identity.name,
            fingerprint: identity.fingerprint,
            address: identity.address,
            version,
            operation: itemLog.operation,
            object: itemLog.operation === 'Locate' ? undefined : itemLog.uid,
            result: itemLog.result,
            reason: itemLog.reason,
          },
        ]);
      } catch (e) {
        log.error({ err: (e as Error).message, item: itemLog }, 'audit trail unavailable; the asynchronous operation fails and its changes are undone');
        this.opts.observer?.auditFailed?.();
        try {
          await objects.undo();
        } catch (u) {
          log.error({ err: u }, 'undoing an unaudited operation failed');
        }
        return { operation: item.operation, status: 'OperationFailed', reason: 'GeneralFailure', message: 'audit trail unavailable' };
      }
    }
    objects.commit();
    try {
      const e: ExecutedItem = { operation: itemLog.operation, result: itemLog.result, identity: identity.name, seconds: (itemLog.ms ?? 0) / 1000 };
      if (itemLog.reason !== undefined) e.reason = itemLog.reason;
      if (itemLog.uid !== undefined) e.uid = itemLog.uid;
      this.opts.observer?.executed?.([e]);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'executor observer failed');
    }
    return result;
  }

  /** Stops the asynchronous operations: queued ones are canceled, running ones finish. */
  async close(): Promise<void> {
    await this.pending.close();
  }

  /** A whole-message error response (for frames that could not be read at all). */
  messageError(reason: ResultReasonName, message: string): Buffer {
    return this.failMessage(undefined, reason, message).response;
  }

  private toKmipError(e: unknown, log: Logger, op: string): { reason: ResultReasonName; message: string } {
    if (e instanceof KmipError) return { reason: e.reason, message: e.message };
    // Unexpected: the stack goes to the log, never to the client.
    log.error({ err: e, op }, 'operation failed unexpectedly');
    return { reason: 'GeneralFailure', message: 'internal error; see the server log' };
  }

  private undoable(msg: RequestMessage): boolean {
    // Cancel: a canceled asynchronous operation cannot be queued again.
    // Tickets live outside the keystore's journal: a Logout cannot be taken back, nor a ticket
    // issued by a Login or Delegated Login whose value the undone response would never deliver.
    const notUndoable = new Set<number>([
      Enums.Operation.Query,
      Enums.Operation.DiscoverVersions,
      Enums.Operation.Login,
      Enums.Operation.DelegatedLogin,
      Enums.Operation.Logout,
      Enums.Operation.Cancel,
    ]);
    return msg.items.every((i) => !notUndoable.has(i.operation));
  }

  /**
   * The request's credentials: a Ticket credential (2.x) is checked and counted, and stands for
   * the Username and Password credential the server may require (the Login that issued it was
   * checked for it). A delegated ticket makes the request act as the delegating identity.
   */
  private authenticate(msg: RequestMessage, identity: ClientIdentity, version: KmipVersion, log: Logger): AuthOutcome {
    let ticket: Ticket | undefined;
    const presented = compareVersions(version, '2.0') >= 0 ? msg.header.credentials.filter((c) => c.type === Enums.CredentialType.Ticket) : [];
    if (presented.length > 1) return { ok: false, reason: 'AuthenticationNotSuccessful', message: 'a request carries one Ticket credential at most' };
    const cred = presented[0];
    if (cred) {
      const value = ticketValue(cred.raw);
      if (!value) return { ok: false, reason: 'InvalidTicket', message: 'the Ticket credential holds no Ticket of Ticket Type Login with a Ticket Value' };
      if (!this.opts.tickets) return { ok: false, reason: 'InvalidTicket', message: 'this server issues no tickets' };
      const r = this.opts.tickets.use(value, identity, this.clock());
      if (!r.ok) {
        log.info({ reason: r.reason }, 'ticket refused'); // never the value
        return { ok: false, reason: r.reason, message: r.message };
      }
      ticket = r.ticket;
    }
    const need = this.opts.requiredCredential;
    if (need && !ticket) {
      const ok = msg.header.credentials.some(
        (c) => c.type === Enums.CredentialType.UsernameAndPassword && c.username === need.username && c.password !== undefined && timingSafeEqualStr(c.password, need.password),
      );
      if (!ok) return { ok: false, reason: 'AuthenticationNotSuccessful', message: 'a valid Username and Password credential is required' };
    }
    if (ticket?.delegated) {
      const effective: ClientIdentity = { name: ticket.identity };
      if (identity.address !== undefined) effective.address = identity.address;
      return { ok: true, effective, ticket };
    }
    return { ok: true, effective: identity, ticket };
  }

  private failItems(msg: RequestMessage, version: KmipVersion, reason: ResultReasonName, message: string): ExecuteResult {
    const items = msg.items.map((i): ResponseBatchItem => {
      const r: ResponseBatchItem = { operation: i.operation, status: 'OperationFailed', reason, message };
      if (i.uniqueBatchItemId) r.uniqueBatchItemId = i.uniqueBatchItemId;
      return r;
    });
    const logs = msg.items.map((i) => ({ operation: enumValueName('Operation', i.operation) ?? '?', result: 'OperationFailed', reason }));
    return this.respond({ major: msg.header.major, minor: msg.header.minor }, version, items, logs, undefined);
  }

  /** A message-level failure: one batch item with no operation, in the best version we can tell. */
  private failMessage(pv: { major: number; minor: number } | undefined, reason: ResultReasonName, message: string): ExecuteResult {
    const version = answerVersion(pv);
    const item: ResponseBatchItem = { status: 'OperationFailed', reason, message };
    return this.respond(undefined, version, [item], [{ operation: '-', result: 'OperationFailed', reason }], undefined);
  }

  private respond(
    pv: { major: number; minor: number } | undefined,
    version: KmipVersion,
    items: ResponseBatchItem[],
    logs: ItemLog[],
    maxSize: number | undefined,
  ): ExecuteResult {
    const [major, minor] = version.split('.').map(Number) as [number, number];
    void pv;
    const header = { major, minor, timeStamp: BigInt(Math.floor(this.clock().getTime() / 1000)) };
    let response = encodeTtlv(responseMessageNode(header, items.map((i) => responseItemNode(i, version))));
    if (maxSize !== undefined && response.length > maxSize) {
      // Maximum Response Size: each item that made it too large is replaced by Response Too Large.
      const small = items.map((i): ResponseBatchItem => {
        if (i.status !== 'Success' || !i.payload) return i;
        const r: ResponseBatchItem = { ...i, status: 'OperationFailed', reason: 'ResponseTooLarge', message: `the response exceeds the Maximum Response Size of ${maxSize} bytes` };
        delete r.payload;
        return r;
      });
      for (const l of logs) if (l.result === 'Success') Object.assign(l, { result: 'OperationFailed', reason: 'ResponseTooLarge' });
      response = encodeTtlv(responseMessageNode(header, small.map((i) => responseItemNode(i, version))));
    }
    return { response, version, items: logs };
  }
}

function timingSafeEqualStr(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  let diff = ab.length ^ bb.length;
  for (let i = 0; i < Math.max(ab.length, bb.length); i++) diff |= (ab[i] ?? 0) ^ (bb[i] ?? 0);
  return diff === 0;
}

function checkMessageExtension(item: RequestBatchItem): void {
  const ext = item.messageExtension;
  if (!ext) return;
  const critical = optValue(ext, Tag.CriticalityIndicator, 'Boolean');
  if (critical) throw new KmipError('FeatureNotSupported', 'critical Message Extension not supported');
}

/** The version to answer in: the request's when we speak it, else the nearest we speak below it. */
export function answerVersion(pv: { major: number; minor: number } | undefined): KmipVersion {
  if (!pv) return '1.0';
  const exact = parseVersion(pv.major, pv.minor);
  if (exact) return exact;
  let best: KmipVersion = '1.0';
  for (const v of KMIP_VERSIONS) {
    const [maj, min] = v.split('.').map(Number) as [number, number];
    if (maj < pv.major || (maj === pv.major && min <= pv.minor)) best = v;
  }
  return best;
}

/**
 * The protocol version read straight from the fixed offsets of a request that starts like every
 * KMIP request (Request Message / Request Header / Protocol Version / Major / Minor), for
 * answering messages that do not decode as a whole.
 */
export function peekVersionBytes(frame: Buffer): { major: number; minor: number } | undefined {
  if (frame.length < 56) return undefined;
  const tagAt = (o: number) => frame.readUIntBE(o, 3);
  if (tagAt(0) !== Tag.RequestMessage || tagAt(8) !== Tag.RequestHeader || tagAt(16) !== Tag.ProtocolVersion) return undefined;
  if (tagAt(24) !== Tag.ProtocolVersionMajor || frame[27] !== 0x02 || tagAt(40) !== Tag.ProtocolVersionMinor || frame[43] !== 0x02) return undefined;
  return { major: frame.readInt32BE(32), minor: frame.readInt32BE(48) };
}

/** The Ticket Value of a Ticket credential's value (Credential Value / Ticket), if of Ticket Type Login. */
function ticketValue(credentialValue: StructureNode): Uint8Array | undefined {
  try {
    const t = opt(credentialValue, Tag.Ticket, 'Structure') ?? credentialValue;
    if (optValue(t, Tag.TicketType, 'Enumeration') !== Enums.TicketType.Login) return undefined;
    return optValue(t, Tag.TicketValue, 'ByteString');
  } catch {
    return undefined; // a field of the wrong type
  }
}

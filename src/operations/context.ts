import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { KmipAttribute } from '../codec/attributes.js';
import type { ResultReasonName } from '../codec/errors.js';
import type { KmipVersion } from '../spec/index.js';
import type { StructureNode, TtlvNode } from '../ttlv/types.js';
import type { ObjectService } from './objects.js';
import type { Ticket, TicketService } from './tickets.js';

/** Who is asking: established by the transport (certificate CN or pinned name). */
export interface ClientIdentity {
  name: string;
  /** SHA-256 fingerprint of the client certificate, for the audit trail. */
  fingerprint?: string;
  address?: string;
}

/** What the server allows beyond plain ownership. */
export interface AccessPolicy {
  /** Groups of identities that share each other's objects (several vCenter certificates, nodes). */
  groups: string[][];
  /** Identities that may manage every object's lifecycle and attributes. */
  admins: string[];
  /** Whether admins may also Get the key material of objects they do not own. */
  adminsMayReadKeyMaterial: boolean;
  /**
   * Identities that are PyKMIP 0.10 clients ("*": every identity). For them an unnamed Get
   * Attributes leaves out the attributes PyKMIP cannot decode (get-attributes.ts PYKMIP_UNDECODABLE);
   * everyone else gets every attribute, as the spec says. Absent: nobody.
   */
  pykmipClients?: string[];
}

export interface ServerInfo {
  vendor: string;
  product: string;
  version: string;
  /** Versions offered by DiscoverVersions, preferred first. */
  versions: readonly KmipVersion[];
  /**
   * The handlers the executor serves, for Query Operations and Query Objects. Meant to be filled
   * by the executor from its registered handlers; Query falls back to `allHandlers` without it.
   */
  handlers?: readonly OperationHandler[];
  /** The KMIP port the server listens on, for Query Profiles' Server Port (absent: not reported). */
  port?: number;
  /** Deployment claim Query reports when configured; an absent list answers nothing. */
  protectionStorageMasks?: readonly number[];
  /** The Lease Time attribute of cryptographic objects, in seconds (0: none); default 3600 (operations/server-attributes.ts). */
  leaseTimeSeconds?: number;
  /** Identities trusted as upstream key servers: the only ones that may send Put and Notify (operations/upstream.ts). */
  upstreams?: readonly string[];
  /**
   * The CA certificates the server itself trusts (its own CA and its client trust store's CAs),
   * read when asked so that trust store changes apply: Validate's trust anchors (validate.ts).
   */
  trustAnchors?: () => readonly X509Certificate[];
}

/** Login tickets as one request sees them (src/operations/tickets.ts). */
export interface SessionContext {
  /** The server's tickets; undefined: this executor issues none. */
  tickets: TicketService | undefined;
  /** The ticket the request presented in its header, already checked and counted. */
  ticket: Ticket | undefined;
  /** The connection's own identity (differs from `identity` under a delegated ticket). */
  presenter: ClientIdentity;
}

/** The response item of an asynchronous operation, as Poll answers it (the original operation's). */
export interface AsyncAnswer {
  operation: number;
  status: 'Success' | 'OperationFailed' | 'OperationPending';
  reason?: ResultReasonName;
  message?: string;
  /** The Asynchronous Correlation Value, while the operation is still pending. */
  correlation?: Buffer;
  payload?: TtlvNode[];
}

/** The requesting client's asynchronous operations on this node (src/server/async.ts). */
export interface AsyncAccess {
  /** Throws Invalid Asynchronous Correlation Value when the client has no operation by that value. */
  poll(correlation: Uint8Array): Promise<AsyncAnswer>;
  /** The Cancellation Result (Enums.CancellationResult). */
  cancel(correlation: Uint8Array): number;
}

/** Everything a handler may use for one batch item. */
export interface OperationContext {
  /** Whose objects and rights the request uses: the client, or the delegating identity of a delegated ticket. */
  identity: ClientIdentity;
  version: KmipVersion;
  log: Logger;
  objects: ObjectService;
  server: ServerInfo;
  now(): Date;
  /** The ID Placeholder of this message (the uid the previous item produced), if any. */
  idPlaceholder: string | undefined;
  setIdPlaceholder(uid: string): void;
  /** The uid named in a payload, or the ID Placeholder when the payload names none. */
  uidOrPlaceholder(payload: StructureNode): string;
  session: SessionContext;
  /** The operations a delegated ticket restricts this request to (undefined: no restriction). */
  permittedOperations: ReadonlySet<number> | undefined;
  /** Client-supplied text for this item's audit record (the Log operation); never key material. */
  auditMessage(text: string): void;
  /** This client's asynchronous operations (Poll, Cancel); absent where the executor offers none. */
  async?: AsyncAccess;
  /**
   * Poll only: answer this batch item as `answer` (its operation, status, reason and payload)
   * instead of as a successful Poll.
   */
  answerAs?(answer: AsyncAnswer): void;
}

export interface OperationHandler {
  /** Operation enumeration value. */
  operation: number;
  /** Normalised operation name, for logs and Query. */
  name: string;
  /** First protocol version in which the operation exists. */
  since: KmipVersion;
  /** Object Types this operation brings into the server (Create, Register...), for Query Objects. */
  objectTypes?: readonly number[];
  /** Values this operation supplies for attributes the client leaves out, per Object Type (Query Defaults Information). */
  objectDefaults?: readonly { objectType: number; attributes: readonly KmipAttribute[] }[];
  /** Returns the children of the Response Payload. Throws KmipError to fail the item. */
  handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]>;
}

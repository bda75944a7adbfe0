/**
 * The audit trail's vocabulary: what a caller hands in (AuditEntry), what lands on disk
 * (AuditRecord, one canonical JSON line each), and the sink the executor awaits.
 */

/** One event to record: a KMIP batch item, or an admin command. Never key material. */
export interface AuditEntry {
  kind: 'kmip' | 'admin';
  /** When it happened; the writer's clock when absent. */
  time?: Date;
  /** Who: the client certificate's identity (KMIP), or the operating-system user (admin). */
  identity: string;
  /** SHA-256 (hex) of the client certificate. */
  fingerprint?: string | undefined;
  /** Source address of the connection ('local' for the CLI). */
  address?: string | undefined;
  /** KMIP protocol version of the exchange. */
  version?: string | undefined;
  /** KMIP operation name ('Get', '-' for an unreadable message), or the admin command ('key revoke'). */
  operation: string;
  /** The object's Unique Identifier, when the operation named or produced one. */
  object?: string | undefined;
  /** Result status ('Success', 'OperationFailed', ...). */
  result: string;
  /** Result reason ('ItemNotFound', ...). */
  reason?: string | undefined;
  /** KMIP: the delegating identity when the request presented a delegated ticket (`identity` is the presenter). */
  onBehalfOf?: string | undefined;
  /** KMIP: client-supplied text (the Log operation's Log Message), cut to MAX_VALUE_CHARS. Never key material. */
  message?: string | undefined;
}

/** What the executor awaits before it hands a response back for sending. */
export interface AuditSink {
  /** Resolves once every entry is durable (written and fsynced); rejects when it cannot be. */
  record(entries: readonly AuditEntry[]): Promise<void>;
}

export type AuditKind = 'kmip' | 'admin' | 'anchor' | 'event';

/** One line of DIR/audit/audit.log, as parsed. Fields absent from a line are undefined. */
export interface AuditRecord {
  seq: number;
  /** ISO 8601, UTC, milliseconds. */
  time: string;
  kind: AuditKind;
  identity?: string;
  fingerprint?: string;
  address?: string;
  version?: string;
  operation?: string;
  object?: string;
  result?: string;
  reason?: string;
  /** KMIP: the delegating identity of a delegated ticket. */
  onBehalfOf?: string;
  /** KMIP: the client's Log Message. */
  message?: string;
  /** Anchors: the id (not the key) of the master key the anchor key was derived from. */
  master?: string;
  /** Anchors: HMAC-SHA256 (hex) of the anchor's canonical bytes (which hold the chain head, `prev`). */
  mac?: string;
  /** Hash (hex) of the previous record; 64 zeros for seq 1. */
  prev: string;
  /** SHA-256 (hex) over the bytes of `prev` followed by this record's canonical bytes without `hash`. */
  hash: string;
}

/** The audit trail could not be written: the request that needed it fails. */
export class AuditUnavailableError extends Error {
  override readonly name = 'AuditUnavailableError';
}

/** Keystore meta key holding the newest anchor, `{"seq":N,"hash":"..."}`, to notice a removed tail. */
export const META_AUDIT_ANCHOR = 'audit.anchor';

/** The folder under the data directory, the live file, and the name of rotated files. */
export const AUDIT_DIR = 'audit';
export const AUDIT_FILE = 'audit.log';
export const AUDIT_LOCK = 'audit.lock';
export const ROTATED_RE = /^audit-(\d{12})\.log$/;

export function rotatedName(firstSeq: number): string {
  return `audit-${String(firstSeq).padStart(12, '0')}.log`;
}

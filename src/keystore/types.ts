import type { TtlvNode } from '../ttlv/types.js';

/**
 * One attribute instance in the server's internal, version-independent model.
 *
 * - `name` is the KMIP 1.x spec name ("Cryptographic Algorithm", "Name", "Link") for standard
 *   attributes, or the custom name ("x-Product", "y-foo") for custom/vendor attributes.
 * - `index` is the instance number among attributes of the same name (0 for the first).
 * - `value` is the value as a TTLV node. For standard attributes its tag is the attribute's own
 *   tag (the 2.x shape: a Name is a Structure tagged Name holding Name Value and Name Type); for
 *   custom attributes the tag is Attribute Value (0x42000B).
 */
export interface StoredAttribute {
  name: string;
  index: number;
  value: TtlvNode;
}

/**
 * Key material wrapped for storage: an opaque blob produced by the crypto layer's envelope
 * (AES-256-GCM under a root key, the object's identifier bound as additional data).
 * The keystore never sees plaintext key material.
 */
export interface WrappedMaterial {
  /** Which root key version wrapped it. */
  rootKeyId: string;
  blob: Buffer;
}

/** A managed object as stored. */
export interface StoredObject {
  uid: string;
  /** KMIP Object Type enumeration value. */
  objectType: number;
  /** KMIP State enumeration value. */
  state: number;
  /** Identity (certificate CN or pinned name) that created or registered it. */
  owner: string;
  attributes: StoredAttribute[];
  /** Absent for objects without material, and after Destroy. */
  material: WrappedMaterial | null;
  /** Bumped on every write; used for optimistic concurrency and undo. */
  revision: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
}

/**
 * A comparison in a Locate query. Values are compared in the attribute's own type:
 * Integer, Enumeration, Interval, Long Integer and Big Integer values match a `number` or a
 * `bigint` of the same value; Boolean a `boolean`; Text String a `string`; Byte String a
 * `Buffer`. Date-Time and Date-Time Extended values are compared in seconds since the epoch
 * (a Date-Time Extended keeps its microseconds as a fraction). Name matches on its Name Value;
 * other structured attributes can only be tested with `present` (the caller filters further).
 */
export type AttributeFilter =
  /** Equality on a scalar attribute (any instance matches), or on Name's Name Value. */
  | { kind: 'equals'; name: string; value: string | number | bigint | boolean | Buffer }
  /** An inclusive range on a Date-Time attribute, in seconds since the epoch. */
  | { kind: 'range'; name: string; from?: bigint; to?: bigint }
  /** The attribute exists (any value). */
  | { kind: 'present'; name: string }
  /** The object has no instance of the attribute (Locate leaves archived objects out this way). */
  | { kind: 'absent'; name: string };

export interface LocateQuery {
  /** Only objects owned by one of these identities; undefined means every owner (admin view). */
  owners?: string[];
  objectTypes?: number[];
  states?: number[];
  filters: AttributeFilter[];
  /** Skip this many matches (Offset Items). */
  offset?: number;
  /** Return at most this many (Maximum Items). */
  limit?: number;
}

export interface RootKeyRecord {
  id: string;
  /** The root key wrapped by the master key (RFC 5649 or the provider's format). */
  wrapped: Buffer;
  /** Which master key version wrapped it. */
  masterKeyId: string;
  /** 'active' wraps new objects; 'retired' only unwraps. */
  status: 'active' | 'retired';
  createdAt: number;
}

/**
 * The persistence interface. SQLite implements it now, PostgreSQL later; the same test suite
 * runs against both. Every method that writes resolves only once the write is durable.
 */
export interface KeyStore {
  readonly backend: string;
  /** Inserts a new object; rejects if the uid exists. */
  insert(obj: StoredObject): Promise<void>;
  get(uid: string): Promise<StoredObject | undefined>;
  /**
   * Replaces the stored row of `obj.uid` if its stored revision equals `expectedRevision`
   * (else rejects with ConcurrentModificationError; also when the uid does not exist).
   * Stores `obj` with revision `expectedRevision + 1` and returns it.
   */
  update(obj: StoredObject, expectedRevision: number): Promise<StoredObject>;
  /** Puts a row back exactly as given (undo), or removes the uid when `obj` is null. */
  restore(uid: string, obj: StoredObject | null): Promise<void>;
  /** Unique identifiers of matching objects, oldest first. */
  locate(q: LocateQuery): Promise<string[]>;
  /** Counts by (objectType, state), for metrics and status. */
  count(): Promise<{ objectType: number; state: number; n: number }[]>;

  /** Every root key record, oldest first. */
  rootKeys(): Promise<RootKeyRecord[]>;
  /**
   * Inserts or replaces the record with `r.id` (replacing is how a root key is re-wrapped under
   * a new master key, or retired). Putting an 'active' record retires every other active one in
   * the same transaction, so there is never more than one active root key.
   */
  putRootKey(r: RootKeyRecord): Promise<void>;
  /**
   * Inserts or replaces every record of `records` (as putRootKey) and sets every key of `meta`
   * (as setMeta), all in one transaction: how the root keys are re-wrapped under a new master
   * key together with its canary. Nothing is written if any part fails.
   */
  putRootKeys(records: RootKeyRecord[], meta?: Record<string, string>): Promise<void>;
  /**
   * How many objects have material sealed under each root key (WrappedMaterial.rootKeyId),
   * for key rotation and status. Ids with no object are absent; objects without material are
   * not counted.
   */
  countByRootKey(): Promise<{ rootKeyId: string; n: number }[]>;

  /**
   * Small settings the server keeps with its data (schema version, master-key kind, ...).
   * `schema_version` is owned by the backend: readable, but setMeta rejects it.
   */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;

  close(): Promise<void>;
}

export class ConcurrentModificationError extends Error {
  override readonly name = 'ConcurrentModificationError';
}

export class DuplicateObjectError extends Error {
  override readonly name = 'DuplicateObjectError';
}

/**
 * The database was written by a newer kmipd (schema version above what this build knows), or is
 * not a kmipd database at all. The store refuses to open it and leaves it untouched.
 */
export class UnsupportedSchemaError extends Error {
  override readonly name = 'UnsupportedSchemaError';
}

/** A method was called after close(). */
export class KeyStoreClosedError extends Error {
  override readonly name = 'KeyStoreClosedError';
}

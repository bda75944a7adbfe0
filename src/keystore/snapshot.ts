/**
 * A consistent, read-only view of a whole keystore, for backups: every method reads the same
 * point in time, while the store keeps serving writes. Backends produce it their own way
 * (SQLite: a copy made with the online backup API; PostgreSQL: a REPEATABLE READ transaction).
 */
import type { RootKeyRecord } from './types.js';

/** An object row as stored: the attributes still in their TTLV blob, the material still wrapped. */
export interface RawObjectRow {
  uid: string;
  objectType: number;
  state: number;
  owner: string;
  /** encodeAttributes() output (src/keystore/attributes.ts); the same on every backend. */
  attributes: Buffer;
  material: { rootKeyId: string; blob: Buffer } | null;
  revision: number;
  createdAt: number;
  updatedAt: number;
}

export interface StoreSnapshot {
  readonly backend: string;
  /** Every meta entry, schema_version included. */
  meta(): Promise<[string, string][]>;
  rootKeys(): Promise<RootKeyRecord[]>;
  countObjects(): Promise<number>;
  /** Every object in Locate order (oldest first), in batches of at most `batch`. */
  objects(batch: number): AsyncIterable<RawObjectRow[]>;
}

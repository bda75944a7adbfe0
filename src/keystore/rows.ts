/**
 * What both keystore backends share below the KeyStore interface: the object row's columns and
 * their mapping to StoredObject, and the validation of root key records and meta writes.
 */
import { decodeAttributes } from './attributes.js';
import type { RawObjectRow } from './snapshot.js';
import { SCHEMA_VERSION_KEY } from './migrations.js';
import type { RootKeyRecord, StoredObject } from './types.js';

/** The columns of an object row, as both SQLite and PostgreSQL return them. */
export interface ObjectRow {
  uid: string;
  object_type: number;
  state: number;
  owner: string;
  attributes: Buffer;
  root_key_id: string | null;
  material: Buffer | null;
  revision: number;
  created_at: number;
  updated_at: number;
}

export function rawRow(r: ObjectRow): RawObjectRow {
  return {
    uid: r.uid,
    objectType: r.object_type,
    state: r.state,
    owner: r.owner,
    attributes: r.attributes,
    material: r.root_key_id === null || r.material === null ? null : { rootKeyId: r.root_key_id, blob: r.material },
    revision: r.revision,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function rowToObject(r: ObjectRow): StoredObject {
  const raw = rawRow(r);
  return { ...raw, attributes: decodeAttributes(raw.attributes) };
}

export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** `checkString` lets a backend refuse strings it cannot store (PostgreSQL text: no U+0000). */
export type StringCheck = (s: string, what: string) => void;

export function checkRootKey(r: RootKeyRecord, checkString: StringCheck = () => {}): void {
  if (typeof r !== 'object' || r === null) throw new TypeError('root key record expected');
  if (typeof r.id !== 'string' || r.id.length === 0) throw new TypeError('root key id must be a non-empty string');
  checkString(r.id, 'root key id');
  if (!(r.wrapped instanceof Uint8Array) || r.wrapped.length === 0) throw new TypeError('root key must be wrapped bytes');
  if (typeof r.masterKeyId !== 'string') throw new TypeError('root key masterKeyId must be a string');
  checkString(r.masterKeyId, 'root key masterKeyId');
  if (r.status !== 'active' && r.status !== 'retired') throw new TypeError(`root key status must be 'active' or 'retired'`);
  if (!Number.isSafeInteger(r.createdAt)) throw new TypeError('root key createdAt must be integer milliseconds');
}

export function checkMeta(key: string, value: string, checkString: StringCheck = () => {}): void {
  if (typeof key !== 'string' || key.length === 0 || typeof value !== 'string') throw new TypeError('meta key and value must be strings (key non-empty)');
  if (key === SCHEMA_VERSION_KEY) throw new Error(`meta key ${key} is managed by the keystore`);
  checkString(key, 'meta key');
  checkString(value, 'meta value');
}

export interface RootKeyBatch {
  rows: { id: string; wrapped: Buffer; masterKeyId: string; status: 'active' | 'retired'; createdAt: number }[];
  metaRows: [string, string][];
}

/** Validates a putRootKeys() call: at most one active key, every record and meta entry well formed. */
export function rootKeyBatch(records: RootKeyRecord[], meta: Record<string, string>, checkString: StringCheck = () => {}): RootKeyBatch {
  if (!Array.isArray(records)) throw new TypeError('root key records expected');
  if (records.filter((r) => r?.status === 'active').length > 1) throw new TypeError('at most one root key can be active');
  const rows = records.map((r) => {
    checkRootKey(r, checkString);
    return { id: r.id, wrapped: Buffer.from(asBuffer(r.wrapped)), masterKeyId: r.masterKeyId, status: r.status, createdAt: r.createdAt };
  });
  const metaRows = Object.entries(meta);
  for (const [k, v] of metaRows) checkMeta(k, v, checkString);
  return { rows, metaRows };
}

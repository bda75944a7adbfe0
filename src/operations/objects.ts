import { randomUUID } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import type { KmipAttribute } from '../codec/attributes.js';
import type { KeyStore, LocateQuery, StoredObject, WrappedMaterial } from '../keystore/types.js';
import { ConcurrentModificationError } from '../keystore/types.js';
import { encodeAttributes } from '../keystore/attributes.js';
import type { AccessPolicy, ClientIdentity } from './context.js';

/** Seals and opens object material (the crypto layer's envelope, or an HSM doing it directly). */
export interface MaterialSealer {
  seal(uid: string, plaintext: Buffer): Promise<WrappedMaterial>;
  open(uid: string, wrapped: WrappedMaterial): Promise<Buffer>;
}

export type Access =
  /** Read attributes, Locate. */
  | 'read'
  /** Change attributes or state. */
  | 'manage'
  /** Read key material. */
  | 'material';

/**
 * The keystore as one client sees it during one message: ownership enforced (another
 * identity's object is indistinguishable from one that does not exist), material sealed on the
 * way in and opened on the way out, and every write journalled so that a batch with
 * Undo can be rolled back.
 */
export class ObjectService {
  private readonly journal = new Map<string, StoredObject | null>();

  constructor(
    private readonly store: KeyStore,
    private readonly sealer: MaterialSealer,
    private readonly identity: ClientIdentity,
    private readonly policy: AccessPolicy,
  ) {}

  /** Identities whose objects this client shares (itself included). */
  visibleOwners(): string[] {
    const me = this.identity.name;
    const owners = new Set([me]);
    for (const g of this.policy.groups) if (g.includes(me)) for (const m of g) owners.add(m);
    return [...owners];
  }

  isAdmin(): boolean {
    return this.policy.admins.includes(this.identity.name);
  }

  private allowed(obj: StoredObject, access: Access): boolean {
    if (this.visibleOwners().includes(obj.owner)) return true;
    if (!this.isAdmin()) return false;
    return access !== 'material' || this.policy.adminsMayReadKeyMaterial;
  }

  /**
   * The object `uid` if this client may use it for `access`. Otherwise the same ItemNotFound as
   * for an object that does not exist, except that an admin who may see it but not read its
   * material gets PermissionDenied. An archived object (one with an Archive Date, see
   * archive.ts) is out of service: 'manage' and 'material' access to it is Object Archived,
   * unless `opts.archived` (Archive, Recover) accepts it.
   */
  async find(uid: string, access: Access, opts: { archived?: boolean } = {}): Promise<StoredObject> {
    const obj = await this.store.get(uid);
    if (!obj) throw new KmipError('ItemNotFound', `no object with Unique Identifier '${uid}'`);
    if (this.allowed(obj, access)) {
      if (access !== 'read' && !opts.archived && obj.attributes.some((a) => a.name === 'Archive Date')) {
        throw new KmipError('ObjectArchived', 'the object is archived; Recover it first');
      }
      return obj;
    }
    if (this.allowed(obj, 'read')) throw new KmipError('PermissionDenied', 'not permitted to read this object\'s key material');
    throw new KmipError('ItemNotFound', `no object with Unique Identifier '${uid}'`);
  }

  newUid(): string {
    return randomUUID();
  }

  async create(o: {
    uid?: string;
    objectType: number;
    state: number;
    attributes: KmipAttribute[];
    material?: Buffer;
  }): Promise<StoredObject> {
    const uid = o.uid ?? this.newUid();
    const now = Date.now();
    const material = o.material ? await this.sealer.seal(uid, o.material) : null;
    const obj: StoredObject = {
      uid,
      objectType: o.objectType,
      state: o.state,
      owner: this.identity.name,
      attributes: o.attributes,
      material,
      revision: 1,
      createdAt: now,
      updatedAt: now,
    };
    if (!this.journal.has(uid)) this.journal.set(uid, null);
    await this.store.insert(obj);
    return obj;
  }

  /** Writes `next` over `prev` (from find); optimistic: a concurrent change fails the item. */
  async save(prev: StoredObject, next: StoredObject): Promise<StoredObject> {
    if (!this.journal.has(prev.uid)) this.journal.set(prev.uid, prev);
    try {
      return await this.store.update({ ...next, updatedAt: Date.now() }, prev.revision);
    } catch (e) {
      if (!(e instanceof ConcurrentModificationError)) throw e;
      // A root-key rotation re-wraps material under our feet without changing anything a
      // client sees: apply this change on top of the re-wrapped row. Any other concurrent
      // change is a real conflict.
      const fresh = await this.store.get(prev.uid);
      if (fresh && sameVisibleState(fresh, prev)) {
        const material = next.material === prev.material ? fresh.material : next.material;
        try {
          return await this.store.update({ ...next, material, updatedAt: Date.now() }, fresh.revision);
        } catch (e2) {
          if (!(e2 instanceof ConcurrentModificationError)) throw e2;
        }
      }
      throw new KmipError('GeneralFailure', 'the object was changed by another request at the same time; retry');
    }
  }

  /** Opens the object's material. Callers must zero the buffer when done with it. */
  async material(obj: StoredObject): Promise<Buffer> {
    if (!obj.material) throw new KmipError('KeyValueNotPresent', 'the object has no key material');
    return this.sealer.open(obj.uid, obj.material);
  }

  async seal(uid: string, plaintext: Buffer): Promise<WrappedMaterial> {
    return this.sealer.seal(uid, plaintext);
  }

  async locate(q: Omit<LocateQuery, 'owners'>): Promise<string[]> {
    return this.store.locate({ ...q, owners: this.isAdmin() ? undefined : this.visibleOwners() });
  }

  /** Rolls back every write made through this service, newest first. */
  async undo(): Promise<void> {
    const entries = [...this.journal.entries()].reverse();
    this.journal.clear();
    for (const [uid, before] of entries) await this.store.restore(uid, before);
  }

  /** Forget the journal (after a message that cannot be undone, or once it has succeeded). */
  commit(): void {
    this.journal.clear();
  }
}

/** Same owner, state and attributes: two revisions that differ at most in how material is sealed. */
function sameVisibleState(a: StoredObject, b: StoredObject): boolean {
  return a.owner === b.owner && a.state === b.state && a.objectType === b.objectType && encodeAttributes(a.attributes).equals(encodeAttributes(b.attributes));
}

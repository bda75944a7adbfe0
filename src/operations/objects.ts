import { KmipError } from '../codec/errors.js';
import type { KmipAttribute } from '../codec/attributes.js';
import type { KeyStore, LocateQuery, StoredObject, WrappedMaterial } from '../keystore/types.js';
import { ConcurrentModificationError, DuplicateObjectError } from '../keystore/types.js';
import { encodeAttributes } from '../keystore/attributes.js';
import type { AccessPolicy, ClientIdentity } from './context.js';
import { uuidv7 } from '../keystore/uid.js';

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
  /** The objects a delegated ticket's Rights allow for the current item (undefined: any). */
  private restriction: ReadonlySet<string> | undefined;

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

  /** Whether this client is listed in policy.pykmipClients (see AccessPolicy). */
  pykmipCompat(): boolean {
    const list = this.policy.pykmipClients ?? [];
    return list.includes('*') || list.includes(this.identity.name);
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
   * Limits the objects the current batch item may use to `uids` (a delegated ticket's Rights,
   * src/operations/tickets.ts); undefined lifts the limit. Others are Not Authorised, and Locate
   * does not show them.
   */
  restrictTo(uids: ReadonlySet<string> | undefined): void {
    this.restriction = uids;
  }

  /**
   * The object `uid` if this client may use it for `access`. Otherwise the same ItemNotFound as
   * for an object that does not exist, except that an admin who may see it but not read its
   * material gets PermissionDenied. An archived object (one with an Archive Date, see
   * archive.ts) is out of service: 'manage' and 'material' access to it is Object Archived,
   * unless `opts.archived` (Archive, Recover) accepts it.
   */
  async find(uid: string, access: Access, opts: { archived?: boolean } = {}): Promise<StoredObject> {
    // Checked before existence: the answer is the same for every uid outside the Rights.
    if (this.restriction && !this.restriction.has(uid)) throw new KmipError('NotAuthorised', 'the ticket\'s Rights do not include this object');
    const obj = await this.store.get(uid);
    if (!obj) throw new KmipError('ObjectNotFound', `no object with Unique Identifier '${uid}'`);
    if (this.allowed(obj, access)) {
      if (access !== 'read' && !opts.archived && obj.attributes.some((a) => a.name === 'Archive Date')) {
        throw new KmipError('ObjectArchived', 'the object is archived; Recover it first');
      }
      return obj;
    }
    if (this.allowed(obj, 'read')) throw new KmipError('PermissionDenied', 'not permitted to read this object\'s key material');
    throw new KmipError('ObjectNotFound', `no object with Unique Identifier '${uid}'`);
  }

  /**
   * For Import: the object stored under `uid` when this client may replace it (its own or its
   * group's), undefined when there is none. An object of another identity (admins included:
   * they manage lifecycles, they do not overwrite key material) is Object Already Exists: the
   * identifier is taken and not this client's to reuse.
   */
  async replaceable(uid: string): Promise<StoredObject | undefined> {
    const obj = await this.store.get(uid);
    if (!obj) return undefined;
    if (!this.visibleOwners().includes(obj.owner)) throw new KmipError('ObjectAlreadyExists', `an object with Unique Identifier '${uid}' exists and this client may not replace it`);
    return obj;
  }

  /** A new object's Unique Identifier: a time-ordered UUID (src/keystore/uid.ts). */
  newUid(): string {
    return uuidv7();
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
    try {
      await this.store.insert(obj);
    } catch (e) {
      // Only with a uid the request chose (Put): ours are random UUIDs.
      if (e instanceof DuplicateObjectError) throw new KmipError('ObjectAlreadyExists', `an object with Unique Identifier '${uid}' exists already`);
      throw e;
    }
    // Journalled once inserted: an Undo must never remove an object that was there before.
    if (!this.journal.has(uid)) this.journal.set(uid, null);
    return obj;
  }

  /**
   * Whether `uid` exists and whether this client may use it for `access`, for requests that
   * name identifiers of their own (Put): the object, 'hidden' when it exists but this client may
   * not see it, undefined when there is none.
   */
  async probe(uid: string, access: Access): Promise<StoredObject | 'hidden' | undefined> {
    const obj = await this.store.get(uid);
    if (!obj) return undefined;
    return this.allowed(obj, access) ? obj : 'hidden';
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
    const owners = this.isAdmin() ? undefined : this.visibleOwners();
    const only = this.restriction;
    if (!only) return this.store.locate({ ...q, owners });
    // Offset and Maximum Items count the objects the Rights allow: apply them after the filter.
    const { offset, limit, ...rest } = q;
    const allowed = (await this.store.locate({ ...rest, owners })).filter((uid) => only.has(uid));
    const from = offset ?? 0;
    return allowed.slice(from, limit !== undefined ? from + limit : undefined);
  }

  /**
   * A setting this client keeps on the server (Set Constraints), persisted with the server's
   * data and scoped to the client identity: one client's settings never affect another's.
   */
  async clientSetting(name: string): Promise<string | undefined> {
    const v = await this.store.getMeta(clientSettingKey(this.identity.name, name));
    return v === '' ? undefined : v;
  }

  /** Stores (or, with undefined, clears) a setting of this client's. */
  async setClientSetting(name: string, value: string | undefined): Promise<void> {
    await this.store.setMeta(clientSettingKey(this.identity.name, name), value ?? '');
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

function clientSettingKey(identity: string, name: string): string {
  return `client:${name}:${identity}`;
}

/** Same owner, state and attributes: two revisions that differ at most in how material is sealed. */
function sameVisibleState(a: StoredObject, b: StoredObject): boolean {
  return a.owner === b.owner && a.state === b.state && a.objectType === b.objectType && encodeAttributes(a.attributes).equals(encodeAttributes(b.attributes));
}

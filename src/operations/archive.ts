/**
 * Archive and Recover (KMIP 1.4 §4.22 and §4.23; 2.1 §6.1 "Archive" and "Recover").
 *
 * kmipd has no off-line storage tier: an archived object stays where it was, in the keystore,
 * its material wrapped as always. "Archived" means that the object is out of service until it
 * is recovered:
 *   - it carries the Archive Date attribute (1.4 §3.32: set by Archive, deleted by Recover),
 *     which is how the archived state is persisted (SQLite and PostgreSQL alike, no separate
 *     column);
 *   - every operation that uses the object or changes it (Get, Encrypt / Decrypt / Sign / MAC /
 *     ..., Activate, Revoke, Destroy, Re-key, attribute changes, ...) answers Object Archived
 *     (ObjectService.find, for 'material' and 'manage' access);
 *   - Get Attributes and Get Attribute List still read it (TC-101 reads its Archive Date);
 *   - Locate finds it only when the Storage Status Mask includes Archival Storage (the default,
 *     On-line Storage, leaves it out).
 *
 * Both operations need the same right as any lifecycle change (the owner, its group, or an
 * admin of the access policy: 'manage'). Archiving an archived object changes nothing (its
 * Archive Date stays); recovering an object that is not archived changes nothing either.
 * Both may be answered asynchronously (src/server/executor.ts ASYNC_OPERATIONS).
 */
import type { StoredObject } from '../keystore/types.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { dateNode, firstValue, refreshState, seconds, touched, withAttribute, withoutAttribute } from './lifecycle.js';

export const ARCHIVE_DATE = 'Archive Date';

/** The object Archive or Recover names, archived or not, with its state brought up to date. */
async function target(ctx: OperationContext, payload: StructureNode): Promise<StoredObject> {
  return refreshState(ctx, await ctx.objects.find(ctx.uidOrPlaceholder(payload), 'manage', { archived: true }));
}

export const archiveHandler: OperationHandler = {
  operation: Enums.Operation.Archive,
  name: 'Archive',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const obj = await target(ctx, payload);
    if (firstValue(obj.attributes, ARCHIVE_DATE) === undefined) {
      const now = ctx.now();
      const next = touched({ ...obj, attributes: withAttribute(obj.attributes, ARCHIVE_DATE, dateNode(Tag.ArchiveDate, seconds(now))) }, now);
      await ctx.objects.save(obj, next);
      ctx.log.info({ uid: obj.uid }, 'archived');
    }
    return [T.text(Tag.UniqueIdentifier, obj.uid)];
  },
};

export const recoverHandler: OperationHandler = {
  operation: Enums.Operation.Recover,
  name: 'Recover',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const obj = await target(ctx, payload);
    if (firstValue(obj.attributes, ARCHIVE_DATE) !== undefined) {
      const next = touched({ ...obj, attributes: withoutAttribute(obj.attributes, ARCHIVE_DATE) }, ctx.now());
      await ctx.objects.save(obj, next);
      ctx.log.info({ uid: obj.uid }, 'recovered');
    }
    return [T.text(Tag.UniqueIdentifier, obj.uid)];
  },
};

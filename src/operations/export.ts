/**
 * Export (KMIP 1.4 / 2.x "Export"): the object named by its Unique Identifier (or the ID
 * Placeholder) together with all its attributes, for moving it to another server with Import.
 *
 * Request: Unique Identifier, Key Format Type, Key Wrap Type, Key Compression Type, Key Wrapping
 * Specification, with the same meaning as for Get. Response: Object Type, Unique Identifier,
 * Attributes (2.x: one Attributes structure; 1.4: Attribute structures), the object.
 *
 * - The object is served by get.ts `servedObject`, so every rule of Get holds: the caller needs
 *   the same 'material' access (owner or group; an admin only where the policy lets admins read
 *   key material), Extractable false is Not Extractable, a Sensitive object comes only wrapped,
 *   formats and wrapping as for Get. Export is never a way around Get.
 * - The attributes are every attribute the object has, the server-maintained ones computed on
 *   read included (Get Attributes leaves some out unless named; Export does not).
 * - A destroyed object has no key material: Export answers its attributes without the object.
 * - Export does not turn Fresh false: the OASIS test case TC-IMPEXP-3-20 reads the attributes
 *   after an Export and still finds Fresh true (Export hands the managed object over, it does
 *   not serve the key for use).
 */
import { attributesForVersion } from '../codec/attributes.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { loadView } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';
import { readServeOptions, servedObject } from './get.js';
import { isDestroyed } from './lifecycle.js';

export const exportHandler: OperationHandler = {
  operation: Enums.Operation.Export,
  name: 'Export',
  since: '1.4',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const options = readServeOptions(payload);
    const { obj, attrs } = await loadView(ctx, uid, 'material');
    const out: TtlvNode[] = [T.enum(Tag.ObjectType, obj.objectType), T.text(Tag.UniqueIdentifier, obj.uid), ...attributesForVersion(attrs, ctx.version)];
    if (!isDestroyed(obj.state)) out.push(await servedObject(ctx, obj, options));
    ctx.setIdPlaceholder(obj.uid);
    return out;
  },
};

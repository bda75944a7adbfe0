/**
 * Get Attribute List (KMIP 1.4 §4.12, 2.1 §6.1.21): the names (1.x, Attribute Name text strings)
 * or references (2.x, Attribute Reference) of every attribute the object has, each once, limited
 * to the attributes that exist in the client's version.
 */
import { attributeInVersion, isV2 } from '../codec/attributes.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { loadView, referenceTo2x } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';

export const getAttributeListHandler: OperationHandler = {
  operation: Enums.Operation.GetAttributeList,
  name: 'GetAttributeList',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const { attrs } = await loadView(ctx, uid, 'read');
    const names: string[] = [];
    for (const a of attrs) if (attributeInVersion(a, ctx.version) && !names.includes(a.name)) names.push(a.name);
    const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
    if (isV2(ctx.version)) {
      for (const n of names) {
        const ref = referenceTo2x(n);
        if (ref) out.push(ref);
      }
    } else {
      for (const n of names) out.push(T.text(Tag.AttributeName, n));
    }
    return out;
  },
};

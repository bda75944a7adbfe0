/**
 * Delete Attribute (KMIP 1.4 §4.15, 2.1 §6.1.13).
 *
 * - 1.x: Attribute Name and Attribute Index (0 when absent); answers with the deleted Attribute.
 * - 2.x: Current Attribute deletes that instance; an Attribute Reference alone deletes every
 *   instance of the attribute; answers with the Unique Identifier only.
 * - Deleting what does not exist is an error (Attribute Not Found / Attribute Instance Not Found;
 *   1.x Item Not Found). Other instances keep their indices.
 */
import { KmipError } from '../codec/errors.js';
import { attributeTo1x, isV2, type KmipAttribute } from '../codec/attributes.js';
import { opt, optValue, reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { checkClientAttribute } from './attribute-rules.js';
import { attributeIn, instancesOf, internalName, loadForChange, referenceFrom2x, sameValue, saveAttributes } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';

export const deleteAttributeHandler: OperationHandler = {
  operation: Enums.Operation.DeleteAttribute,
  name: 'DeleteAttribute',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const v2 = isV2(ctx.version);
    let name: string;
    let pick: (instances: KmipAttribute[]) => KmipAttribute[];
    if (v2) {
      const cs = opt(payload, Tag.CurrentAttribute, 'Structure');
      const ref = payload.value.find((c) => c.tag === Tag.AttributeReference);
      if (cs) {
        const current = attributeIn(cs, 'Current Attribute');
        name = current.name;
        if (ref && referenceFrom2x(ref) !== name) throw new KmipError('InvalidField', 'Current Attribute and Attribute Reference name different attributes');
        pick = (instances) => {
          const hit = instances.find((i) => sameValue(i.value, current.value));
          return hit ? [hit] : [];
        };
      } else if (ref) {
        name = referenceFrom2x(ref);
        pick = (instances) => instances;
      } else {
        throw new KmipError('MissingData', 'Delete Attribute needs a Current Attribute or an Attribute Reference');
      }
    } else {
      const raw = reqValue(payload, Tag.AttributeName, 'TextString');
      const index = optValue(payload, Tag.AttributeIndex, 'Integer') ?? 0;
      name = internalName(raw) ?? raw;
      pick = (instances) => instances.filter((i) => i.index === index);
    }
    const l = await loadForChange(ctx, payload);
    checkClientAttribute(name, 'delete', l.obj.objectType, l.obj.state);
    const instances = instancesOf(l.obj.attributes, name);
    if (instances.length === 0) throw new KmipError('AttributeNotFound', `the object has no ${name}`);
    const doomed = pick(instances);
    if (doomed.length === 0) throw new KmipError('AttributeInstanceNotFound', `the object has no such ${name} instance`);
    await saveAttributes(ctx, l, l.obj.attributes.filter((a) => !doomed.includes(a)));
    const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, l.uid)];
    const first = doomed[0];
    if (!v2 && first) out.push(attributeTo1x(first, first.index > 0));
    return out;
  },
};

/**
 * Set Attribute (KMIP 2.0+, 2.1 §6.1.51): adds the attribute when the object has none, replaces
 * it when it has exactly one instance, and refuses (Multi Valued Attribute, as in the OASIS 2.0
 * test TC-SETATTR-3-20) when it has several. Read-only attributes are refused by the attribute
 * rules. Answers with the Unique Identifier.
 */
import { KmipError } from '../codec/errors.js';
import type { KmipAttribute } from '../codec/attributes.js';
import { req } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { checkClientAttribute, checkValueType } from './attribute-rules.js';
import { attributeIn, checkNameUnique, instancesOf, loadForChange, nextIndex, saveAttributes, storedValue } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';

export const setAttributeHandler: OperationHandler = {
  operation: Enums.Operation.SetAttribute,
  name: 'SetAttribute',
  since: '2.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const wanted = attributeIn(req(payload, Tag.NewAttribute, 'Structure'), 'New Attribute');
    const l = await loadForChange(ctx, payload);
    const instances = instancesOf(l.obj.attributes, wanted.name);
    // The spec decides by the instances the object has, not by the attribute's kind: the OASIS
    // tests TC-SETATTR-2-20 / -3-20 set a (multi-instance) vendor attribute while it has at most
    // one instance. So the rule checked is that of the add (none yet) or modify (one) it amounts to.
    checkClientAttribute(wanted.name, instances.length === 0 ? 'add' : 'modify', l.obj.objectType, l.obj.state);
    checkValueType(wanted);
    if (instances.length > 1) throw new KmipError('MultiValuedAttribute', `the object has several ${wanted.name} instances: use Modify Attribute`);
    if (wanted.name === 'Name') await checkNameUnique(ctx, l.uid, wanted.value);
    const value = storedValue(wanted.name, wanted.value);
    const existing = instances[0];
    let attributes: KmipAttribute[];
    if (existing) {
      attributes = l.obj.attributes.map((a) => (a === existing ? { name: a.name, index: a.index, value } : a));
    } else {
      attributes = [...l.obj.attributes, { name: wanted.name, index: nextIndex(l.obj.attributes, wanted.name), value }];
    }
    await saveAttributes(ctx, l, attributes);
    return [T.text(Tag.UniqueIdentifier, l.uid)];
  },
};

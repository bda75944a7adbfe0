/**
 * Modify Attribute (KMIP 1.4 §4.14, 2.1 §6.1.34): a new value for an existing instance.
 *
 * - 1.x names the instance by Attribute Name and Attribute Index (0 when absent) and answers
 *   with the modified Attribute.
 * - 2.x names it by Current Attribute (its present value); without one, the object must have
 *   exactly one instance. It answers with the Unique Identifier only.
 * - A missing attribute or instance is an error (Attribute Not Found / Attribute Instance Not
 *   Found; 1.x Item Not Found); new attributes come only through Add Attribute.
 *
 * vSphere 8 uses this (1.x, by name with index 0) when a custom attribute changes.
 */
import { KmipError } from '../codec/errors.js';
import { attributeFrom1x, attributeTo1x, isV2, type KmipAttribute } from '../codec/attributes.js';
import { opt, req } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { checkClientAttribute, checkValueType } from './attribute-rules.js';
import { attributeIn, checkNameUnique, instancesOf, loadForChange, sameValue, saveAttributes, storedValue } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkNoDuplicateNames } from './lifecycle.js';

export const modifyAttributeHandler: OperationHandler = {
  operation: Enums.Operation.ModifyAttribute,
  name: 'ModifyAttribute',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const v2 = isV2(ctx.version);
    let wanted: KmipAttribute;
    let current: KmipAttribute | undefined;
    if (v2) {
      wanted = attributeIn(req(payload, Tag.NewAttribute, 'Structure'), 'New Attribute');
      const cs = opt(payload, Tag.CurrentAttribute, 'Structure');
      if (cs) {
        current = attributeIn(cs, 'Current Attribute');
        if (current.name !== wanted.name) throw new KmipError('InvalidField', 'Current Attribute and New Attribute must be the same attribute');
      }
    } else {
      wanted = attributeFrom1x(req(payload, Tag.Attribute, 'Structure'), true);
    }
    const l = await loadForChange(ctx, payload);
    try {
      checkClientAttribute(wanted.name, 'modify', l.obj.objectType, l.obj.state);
    } catch (e) {
      // KMIP 2.0 profile test cases (AKLC-M-3-20) expect Permission Denied where 2.1 has Wrong Key Lifecycle State.
      if (e instanceof KmipError && e.reason === 'WrongKeyLifecycleState' && ctx.version === '2.0') throw new KmipError('PermissionDenied', e.message);
      throw e;
    }
    checkValueType(wanted);
    const instances = instancesOf(l.obj.attributes, wanted.name);
    if (instances.length === 0) throw new KmipError('AttributeNotFound', `the object has no ${wanted.name}`);
    let target: KmipAttribute | undefined;
    if (!v2) {
      target = instances.find((i) => i.index === wanted.index);
    } else if (current) {
      const cv = current.value;
      target = instances.find((i) => sameValue(i.value, cv));
    } else {
      if (instances.length > 1) throw new KmipError('MultiValuedAttribute', `the object has several ${wanted.name} instances: name one with Current Attribute`);
      target = instances[0];
    }
    if (!target) throw new KmipError('AttributeInstanceNotFound', `the object has no such ${wanted.name} instance`);
    if (wanted.name === 'Name') {
      // Not the value of another of the object's own Names, nor another object's name.
      checkNoDuplicateNames([...l.obj.attributes.filter((a) => a !== target), wanted]);
      await checkNameUnique(ctx, l.uid, wanted.value);
    }
    const modified: KmipAttribute = { name: target.name, index: target.index, value: storedValue(target.name, wanted.value) };
    const t = target;
    await saveAttributes(ctx, l, l.obj.attributes.map((a) => (a === t ? modified : a)));
    const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, l.uid)];
    if (!v2) out.push(attributeTo1x(modified, modified.index > 0));
    return out;
  },
};

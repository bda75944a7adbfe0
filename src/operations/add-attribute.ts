/**
 * Add Attribute (KMIP 1.4 §4.13, 2.1 §6.1.2): a new instance of an attribute.
 *
 * - A multi-instance attribute (custom ones included) gets a new instance with the next index;
 *   existing instances never change. 1.x answers with the Attribute and its assigned index;
 *   2.x with the Unique Identifier only.
 * - A single-instance attribute the object already has is refused: 2.x Attribute Single Valued
 *   (OASIS 2.1 test BL-M-5-21), 1.x Illegal Operation ("the specified attribute already exists").
 * - 1.x requests must not carry an Attribute Index (1.4 §4.13); 0 is tolerated.
 * - A Name must be unique (1.4 §3.2; 2.1, the Name attribute): neither an instance the object already
 *   has nor another visible object's name (2.x Non Unique Name Attribute).
 *
 * vCenter sends three of these in one message (x-Product_Version, x-Vendor, x-Product).
 */
import { KmipError } from '../codec/errors.js';
import { attributeFrom1x, attributeTo1x, isV2, type KmipAttribute } from '../codec/attributes.js';
import { opt, optValue, req } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { checkClientAttribute, checkValueType } from './attribute-rules.js';
import {
  attributeIn,
  checkNameUnique,
  instancesOf,
  isMultiInstance,
  loadForChange,
  nextIndex,
  saveAttributes,
  storedValue,
} from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkNoDuplicateNames } from './lifecycle.js';

function readNew(ctx: OperationContext, payload: StructureNode): KmipAttribute {
  if (isV2(ctx.version)) {
    // The 2.0 drafts named it Current Attribute; the standard says New Attribute.
    const s = opt(payload, Tag.NewAttribute, 'Structure') ?? opt(payload, Tag.CurrentAttribute, 'Structure');
    if (!s) throw new KmipError('MissingData', 'Add Attribute needs a New Attribute');
    return attributeIn(s, 'New Attribute');
  }
  const s = req(payload, Tag.Attribute, 'Structure');
  const index = optValue(s, Tag.AttributeIndex, 'Integer');
  if (index !== undefined && index !== 0) throw new KmipError('InvalidField', 'the Attribute Index of a new attribute is assigned by the server');
  return attributeFrom1x(s, true);
}

export const addAttributeHandler: OperationHandler = {
  operation: Enums.Operation.AddAttribute,
  name: 'AddAttribute',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const a = readNew(ctx, payload);
    const l = await loadForChange(ctx, payload);
    checkClientAttribute(a.name, 'add', l.obj.objectType, l.obj.state);
    checkValueType(a);
    const v2 = isV2(ctx.version);
    if (instancesOf(l.obj.attributes, a.name).length > 0 && !isMultiInstance(a.name)) {
      throw new KmipError(v2 ? 'AttributeSingleValued' : 'IllegalOperation', `the object already has a ${a.name} and it may have only one`);
    }
    if (a.name === 'Name') {
      // A Name the object already has is not unique either (2.x Non Unique Name Attribute, as
      // BL-M-8-21 expects; 1.x Invalid Field), nor one another object has.
      checkNoDuplicateNames([...l.obj.attributes, a]);
      await checkNameUnique(ctx, l.uid, a.value);
    }
    const added: KmipAttribute = { name: a.name, index: nextIndex(l.obj.attributes, a.name), value: storedValue(a.name, a.value) };
    await saveAttributes(ctx, l, [...l.obj.attributes, added]);
    const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, l.uid)];
    if (!v2) out.push(attributeTo1x(added, true));
    return out;
  },
};

/**
 * Adjust Attribute (KMIP 2.0/2.1 "Adjust Attribute"): changes a numeric, date or boolean
 * attribute relative to its present value, so that a client need not read, compute and write.
 *
 * Request: Unique Identifier (or the ID Placeholder), Attribute Reference (the attribute),
 * Adjustment Type (Increment, Decrement, Negate), Adjustment Value. Response: Unique Identifier.
 *
 * - The attribute must exist on the object with a single instance (Attribute Not Found /
 *   Multi Valued Attribute) and be one the client may modify (the Modify Attribute rules of
 *   attribute-rules.ts: read-only attributes stay read-only, Activation Date only while
 *   Pre-Active, ...).
 * - Increment / Decrement add / subtract the Adjustment Value, which they need: an Integer,
 *   Long Integer or Big Integer attribute takes a value of its own type or a smaller integer
 *   type; an Interval takes an Interval or Integer (seconds); a Date-Time takes an Interval,
 *   Integer or Long Integer number of seconds. The result must fit the attribute's type
 *   (Integer: 32-bit signed; Interval: 32-bit unsigned; Long Integer: 64-bit signed; Date-Time:
 *   not before the epoch), otherwise Invalid Field and nothing changes.
 * - Negate takes no Adjustment Value: a Boolean becomes its opposite, an Integer, Long Integer
 *   or Big Integer its negative. Intervals and dates cannot be negated.
 * - Any other type (text, structures) cannot be adjusted: Invalid Field.
 * Last Change Date moves, as for every change of attributes.
 */
import { KmipError } from '../codec/errors.js';
import { children, reqValue } from '../codec/node.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { checkClientAttribute } from './attribute-rules.js';
import { instancesOf, loadForChange, referenceFrom2x, saveAttributes } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';

const ADJ = Enums.AdjustmentType;
const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const UINT32_MAX = 2n ** 32n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function numberOf(v: TtlvNode, accepted: readonly TtlvNode['type'][], what: string): bigint {
  if (!accepted.includes(v.type)) throw new KmipError('InvalidField', `the Adjustment Value for ${what} must be ${accepted.join(' or ')}, not ${v.type}`);
  if (v.type === 'Integer' || v.type === 'Interval') return BigInt(v.value);
  if (v.type === 'LongInteger' || v.type === 'BigInteger' || v.type === 'DateTime') return v.value;
  throw new KmipError('InvalidField', `the Adjustment Value for ${what} must be numeric`);
}

function inRange(n: bigint, min: bigint, max: bigint, what: string): bigint {
  if (n < min || n > max) throw new KmipError('InvalidField', `the adjusted ${what} would be out of range`);
  return n;
}

/** The attribute's new value. `value` is the Adjustment Value, if any. */
export function adjusted(current: TtlvNode, type: number, value: TtlvNode | undefined, what: string): TtlvNode {
  if (type === ADJ.Negate) {
    if (value) throw new KmipError('InvalidField', 'Negate takes no Adjustment Value');
    switch (current.type) {
      case 'Boolean':
        return { ...current, value: !current.value };
      case 'Integer':
        return { ...current, value: Number(inRange(-BigInt(current.value), INT32_MIN, INT32_MAX, what)) };
      case 'LongInteger':
        return { ...current, value: inRange(-current.value, INT64_MIN, INT64_MAX, what) };
      case 'BigInteger':
        return { ...current, value: -current.value };
      default:
        throw new KmipError('InvalidField', `${what} is a ${current.type} and cannot be negated`);
    }
  }
  if (type !== ADJ.Increment && type !== ADJ.Decrement) throw new KmipError('InvalidField', `unknown Adjustment Type ${enumValueName('AdjustmentType', type) ?? type}`);
  if (!value) throw new KmipError('MissingData', `${type === ADJ.Increment ? 'Increment' : 'Decrement'} needs an Adjustment Value`);
  const sign = type === ADJ.Increment ? 1n : -1n;
  switch (current.type) {
    case 'Integer':
      return { ...current, value: Number(inRange(BigInt(current.value) + sign * numberOf(value, ['Integer'], what), INT32_MIN, INT32_MAX, what)) };
    case 'LongInteger':
      return { ...current, value: inRange(current.value + sign * numberOf(value, ['Integer', 'LongInteger'], what), INT64_MIN, INT64_MAX, what) };
    case 'BigInteger':
      return { ...current, value: current.value + sign * numberOf(value, ['Integer', 'LongInteger', 'BigInteger'], what) };
    case 'Interval':
      return { ...current, value: Number(inRange(BigInt(current.value) + sign * numberOf(value, ['Interval', 'Integer'], what), 0n, UINT32_MAX, what)) };
    case 'DateTime':
      return { ...current, value: inRange(current.value + sign * numberOf(value, ['Interval', 'Integer', 'LongInteger'], what), 0n, INT64_MAX, what) };
    default:
      throw new KmipError('InvalidField', `${what} is a ${current.type} and cannot be incremented or decremented`);
  }
}

export const adjustAttributeHandler: OperationHandler = {
  operation: Enums.Operation.AdjustAttribute,
  name: 'AdjustAttribute',
  since: '2.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const refs = children(payload, Tag.AttributeReference);
    if (refs.length !== 1) throw new KmipError(refs.length === 0 ? 'MissingData' : 'InvalidField', 'Adjust Attribute names exactly one Attribute Reference');
    const name = referenceFrom2x(refs[0]!);
    const type = reqValue(payload, Tag.AdjustmentType, 'Enumeration');
    const value = payload.value.find((c) => c.tag === Tag.AdjustmentValue);
    const l = await loadForChange(ctx, payload);
    checkClientAttribute(name, 'modify', l.obj.objectType, l.obj.state);
    const instances = instancesOf(l.obj.attributes, name);
    if (instances.length === 0) throw new KmipError('AttributeNotFound', `the object has no ${name}`);
    if (instances.length > 1) throw new KmipError('MultiValuedAttribute', `the object has several ${name} instances; Adjust Attribute changes a single-valued one`);
    const target = instances[0]!;
    const next = { ...target, value: adjusted(target.value, type, value, name) };
    await saveAttributes(ctx, l, l.obj.attributes.map((a) => (a === target ? next : a)));
    return [T.text(Tag.UniqueIdentifier, l.uid)];
  },
};

/**
 * Set Constraints and Get Constraints (KMIP 2.1 "Set Constraints", "Get Constraints"): the client
 * tells the server which objects it may bring in, and reads that back.
 *
 * Set Constraints request: an optional Constraints structure, a list of Constraint structures
 * each holding Object Types (Object Type*), Object Groups (Object Group*) and Attributes, all
 * three optional. Without Constraints the client's constraints are removed. Response: empty.
 * Get Constraints request: empty. Response: the Constraints as set (absent when none).
 *
 * How kmipd applies them (checkConstraints below, from Create, Create Key Pair, Register and
 * Import, on the new object's full attribute list):
 * - a constraint applies to an object when the object's type is one of its Object Types (or it
 *   names none) and one of the object's Object Groups is one of its Object Groups (or it names
 *   none);
 * - when no constraint applies the object is free; otherwise it must match at least one of the
 *   constraints that apply: have every attribute the constraint lists, with that value. Each
 *   constraint is an allowance: the OASIS test case TC-MD-24-21 sets "AES-256 in Group1" next
 *   to "AES-192" for all symmetric keys, which only makes sense as alternatives;
 * - an object that matches none is refused with Constraint Violation (2.1; General Failure for
 *   versions without that reason).
 *
 * Scope: the constraints belong to the identity that set them and apply to the objects that
 * identity creates; one client cannot restrict another (a shared server is not one client's to
 * configure). They are kept with the server's data (the keystore's settings), so they survive a
 * restart and hold on every node of a cluster. Set Constraints is not undone by a batch's Undo.
 */
import { attributesFrom2x, type KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { all, opt } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { decodeTtlv, encodeTtlv, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { checkValueType } from './attribute-rules.js';
import { sameValue } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkQuantumSafe } from './quantum-safe.js';

const SETTING = 'constraints';
/** At most this many constraints, and this many bytes of them encoded: a setting, not a store. */
export const MAX_CONSTRAINTS = 64;
export const MAX_CONSTRAINTS_BYTES = 32 * 1024;

interface Constraint {
  objectTypes: number[];
  objectGroups: string[];
  attributes: KmipAttribute[];
}

function listOf<T>(c: StructureNode, listTag: number, read: (s: StructureNode) => T[]): T[] {
  const s = opt(c, listTag, 'Structure');
  return s ? read(s) : [];
}

function readConstraints(s: StructureNode): Constraint[] {
  for (const c of s.value) if (c.tag !== Tag.Constraint) throw new KmipError('InvalidField', 'Constraints holds Constraint structures only');
  const list = all(s, Tag.Constraint, 'Structure');
  if (list.length > MAX_CONSTRAINTS) throw new KmipError('ServerLimitExceeded', `at most ${MAX_CONSTRAINTS} constraints`);
  return list.map((c) => {
    const objectTypes = listOf(c, Tag.ObjectTypes, (x) => all(x, Tag.ObjectType, 'Enumeration').map((n) => n.value));
    const objectGroups = listOf(c, Tag.ObjectGroups, (x) => all(x, Tag.ObjectGroup, 'TextString').map((n) => n.value));
    const attrsNode = opt(c, Tag.Attributes, 'Structure');
    const attributes = attrsNode ? attributesFrom2x(attrsNode) : [];
    for (const a of attributes) checkValueType(a);
    for (const t of objectTypes) {
      if (!Object.values(Enums.ObjectType).includes(t as never)) throw new KmipError('InvalidField', `unknown Object Type ${t} in a Constraint`);
    }
    return { objectTypes, objectGroups, attributes };
  });
}

/** The client's stored Constraints structure, if any. */
async function storedConstraints(ctx: OperationContext): Promise<StructureNode | undefined> {
  const raw = await ctx.objects.clientSetting(SETTING);
  if (raw === undefined) return undefined;
  const n = decodeTtlv(Buffer.from(raw, 'base64'));
  if (n.type !== 'Structure' || n.tag !== Tag.Constraints) throw new KmipError('InternalServerError', 'the stored constraints are malformed');
  return n;
}

/**
 * Throws Constraint Violation when the new object (type and full attribute list) matches none
 * of the client's constraints that apply to it.
 */
export async function checkConstraints(ctx: OperationContext, objectType: number, attrs: readonly KmipAttribute[]): Promise<void> {
  const stored = await storedConstraints(ctx);
  if (!stored) return;
  const groups = attrs.filter((a) => a.name === 'Object Group' && a.value.type === 'TextString').map((a) => a.value.value as string);
  const applicable = readConstraints(stored).filter(
    (c) => (c.objectTypes.length === 0 || c.objectTypes.includes(objectType)) && (c.objectGroups.length === 0 || c.objectGroups.some((g) => groups.includes(g))),
  );
  if (applicable.length === 0) return;
  const matches = (c: Constraint) => c.attributes.every((want) => attrs.some((a) => a.name === want.name && sameValue(a.value, want.value)));
  if (!applicable.some(matches)) {
    throw new KmipError('ConstraintViolation', `the object matches none of the ${applicable.length} constraint(s) set for it`);
  }
}

export const setConstraintsHandler: OperationHandler = {
  operation: Enums.Operation.SetConstraints,
  name: 'SetConstraints',
  since: '2.1',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const s = opt(payload, Tag.Constraints, 'Structure');
    if (!s || s.value.length === 0) {
      await ctx.objects.setClientSetting(SETTING, undefined);
      ctx.log.info('constraints cleared');
      return [];
    }
    const parsed = readConstraints(s);
    const encoded = encodeTtlv(s);
    if (encoded.length > MAX_CONSTRAINTS_BYTES) throw new KmipError('ServerLimitExceeded', `the constraints exceed ${MAX_CONSTRAINTS_BYTES} bytes`);
    await ctx.objects.setClientSetting(SETTING, encoded.toString('base64'));
    ctx.log.info({ constraints: parsed.length }, 'constraints set');
    return [];
  },
};

export const getConstraintsHandler: OperationHandler = {
  operation: Enums.Operation.GetConstraints,
  name: 'GetConstraints',
  since: '2.1',
  async handle(ctx: OperationContext): Promise<TtlvNode[]> {
    const stored = await storedConstraints(ctx);
    return stored ? [stored] : [];
  },
};

/**
 * What every new object a client brings in must pass before it is stored (Create, Create Key
 * Pair, Register, Import): the Quantum Safe rule (quantum-safe.ts) and the client's constraints.
 * `attrs` is the object's full attribute list.
 */
export async function checkNewObject(ctx: OperationContext, objectType: number, attrs: readonly KmipAttribute[]): Promise<void> {
  checkQuantumSafe(attrs);
  await checkConstraints(ctx, objectType, attrs);
}

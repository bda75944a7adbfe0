/**
 * Locate (KMIP 1.4 §4.9, 2.1 §6.1.27): the objects that match every attribute given, newest
 * first, among the objects this client may see (ObjectService.locate passes the owners; another
 * identity's objects are never found).
 *
 * - Attributes: 1.x Attribute structures (standard and x-/y- custom names), 2.x one Attributes
 *   structure (standard attributes and vendor Attribute structures).
 * - Date-Time attributes: one instance matches that instant; two instances of the same date
 *   attribute give a range, limits included. A date at its largest possible value stands for an
 *   undefined attribute.
 * - Cryptographic Usage Mask matches objects having at least the requested bits; Usage Limits
 *   objects with at least the requested count and total; structured attributes (Link,
 *   Application Specific Information, Name with Name Type, ...) match on the fields given.
 * - Storage Status Mask (absent: on-line only). Archived objects (archive.ts) are in Archival
 *   Storage, not on-line: found only when the mask has that bit. Destroyed objects are never
 *   on-line: 2.x finds them only with Destroyed Storage; 1.x, which has no such bit, does not
 *   find them at all (as the OASIS 1.x SKFF test cases expect).
 * - Object Group Member (1.1+): a group is a pool the server serves objects from, oldest first.
 *   Group Member Fresh finds the objects whose Fresh is true, oldest first (TC-152: the first
 *   registered key comes first). Group Member Default finds the group's default object, by
 *   kmipd's policy the member served least recently: a fresh (never served) member first, the
 *   oldest of them, else the member whose Last Change Date is oldest (serving a fresh object
 *   changes it), so that Locate-and-Get cycles through the group (TC-153).
 * - Offset Items (1.3+) skips, Maximum Items caps; Located Items (1.3+) counts every match.
 *
 * What the keystore can filter goes into the LocateQuery; the rest (structured values, masks,
 * states that change with time) is checked here on each candidate.
 */
import { KmipError } from '../codec/errors.js';
import { attributeFrom1x, attributesFrom2x, isV2, type KmipAttribute } from '../codec/attributes.js';
import { all, opt, optValue } from '../codec/node.js';
import type { AttributeFilter, StoredObject } from '../keystore/types.js';
import { Enums, Masks, Tag, compareVersions } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { isCustom, objectView, partialMatch, type View } from './attribute-support.js';
import { isDestroyed } from './lifecycle.js';
import { ARCHIVE_DATE } from './archive.js';
import type { OperationContext, OperationHandler } from './context.js';

interface Plan {
  objectTypes?: number[];
  /** Stored states to ask the keystore for. */
  storedStates?: number[];
  filters: AttributeFilter[];
  /** Checks on each candidate's current view. */
  post: ((v: View) => boolean)[];
}

const S = Enums.State;
const ALL_STATES: readonly number[] = [S.PreActive, S.Active, S.Deactivated, S.Compromised, S.Destroyed, S.DestroyedCompromised];
/** The largest Date-Time: "equivalent to an undefined attribute" in a Locate request. */
const MAX_DATE = (1n << 63n) - 1n;

function intersect(a: readonly number[] | undefined, b: readonly number[]): number[] {
  return a === undefined ? [...new Set(b)] : a.filter((x) => b.includes(x));
}

/**
 * Stored states an object may have while its current state is `s`: time-based transitions
 * (Activation Date, Deactivation Date) move Pre-Active objects to Active and Active ones to
 * Deactivated without a write.
 */
function storedStatesFor(s: number): number[] {
  if (s === S.Active) return [S.PreActive, S.Active];
  if (s === S.Deactivated) return [S.PreActive, S.Active, S.Deactivated];
  return [s];
}

/** Seconds (floor) of a Date-Time or Date-Time Extended value. */
function seconds(n: TtlvNode): bigint {
  if (n.type === 'DateTime') return n.value;
  if (n.type === 'DateTimeExtended') {
    const us = n.value;
    return us >= 0n ? us / 1_000_000n : -((-us + 999_999n) / 1_000_000n);
  }
  throw new KmipError('InvalidField', 'not a date');
}

/** Microseconds of a date value, for exact comparisons. */
function micros(n: TtlvNode): bigint | undefined {
  if (n.type === 'DateTime') return n.value * 1_000_000n;
  if (n.type === 'DateTimeExtended') return n.value;
  return undefined;
}

function isDate(n: TtlvNode): boolean {
  return n.type === 'DateTime' || n.type === 'DateTimeExtended';
}

/** The keystore's form of a scalar value, or undefined for structures and dates. */
function scalar(n: TtlvNode): string | number | bigint | boolean | Buffer | undefined {
  switch (n.type) {
    case 'Integer':
    case 'Enumeration':
    case 'Interval':
      return n.value;
    case 'LongInteger':
    case 'BigInteger':
      return n.value;
    case 'Boolean':
      return n.value;
    case 'TextString':
      return n.value;
    case 'ByteString':
      return Buffer.from(n.value.buffer, n.value.byteOffset, n.value.byteLength);
    default:
      return undefined;
  }
}

function instances(v: View, name: string): KmipAttribute[] {
  return v.attrs.filter((a) => a.name === name);
}

function child(s: TtlvNode, tag: number): TtlvNode | undefined {
  return s.type === 'Structure' ? s.value.find((c) => c.tag === tag) : undefined;
}

function planDates(plan: Plan, name: string, list: KmipAttribute[]): void {
  if (list.length > 2) throw new KmipError('InvalidField', `${name} may appear at most twice in a Locate (one date, or a range)`);
  const values = list.map((a) => a.value);
  const us = values.map((v) => micros(v)!);
  const lo = us.reduce((a, b) => (a < b ? a : b));
  const hi = us.reduce((a, b) => (a > b ? a : b));
  const undefinedAsked = values.some((v) => v.type === 'DateTime' && v.value === MAX_DATE);
  if (undefinedAsked) {
    // A single largest date asks for objects without the attribute; as the upper limit of a range
    // it leaves the range open (an undefined date lies beyond every date).
    const single = list.length === 1;
    plan.post.push((v) => {
      const have = instances(v, name);
      if (have.length === 0) return true;
      if (single) return false;
      return have.some((a) => {
        const m = micros(a.value);
        return m !== undefined && m >= lo;
      });
    });
    return;
  }
  const from = seconds(values.reduce((a, b) => (micros(a)! <= micros(b)! ? a : b)));
  const last = values.reduce((a, b) => (micros(a)! >= micros(b)! ? a : b));
  const to = last.type === 'DateTimeExtended' && last.value % 1_000_000n !== 0n ? seconds(last) + 1n : seconds(last);
  plan.filters.push({ kind: 'range', name, from, to });
  if (values.some((v) => v.type === 'DateTimeExtended')) {
    plan.post.push((v) =>
      instances(v, name).some((a) => {
        const m = micros(a.value);
        return m !== undefined && m >= lo && m <= hi;
      }),
    );
  }
}

function buildPlan(criteria: KmipAttribute[]): Plan {
  const plan: Plan = { filters: [], post: [] };
  const byName = new Map<string, KmipAttribute[]>();
  for (const a of criteria) {
    const list = byName.get(a.name) ?? [];
    list.push(a);
    byName.set(a.name, list);
  }
  for (const [name, list] of byName) {
    const first = list[0]!.value;
    if (name === 'Object Type') {
      plan.objectTypes = intersect(plan.objectTypes, list.map((a) => scalar(a.value) as number));
      if (new Set(list.map((a) => scalar(a.value))).size > 1) plan.objectTypes = [];
      continue;
    }
    if (name === 'State') {
      const wanted = [...new Set(list.map((a) => scalar(a.value) as number))];
      if (wanted.length > 1) {
        plan.storedStates = [];
        continue;
      }
      const s = wanted[0]!;
      plan.storedStates = intersect(plan.storedStates, storedStatesFor(s));
      plan.post.push((v) => v.obj.state === s);
      continue;
    }
    if (name === 'Unique Identifier') {
      const ids = list.map((a) => scalar(a.value));
      plan.post.push((v) => ids.every((id) => id === v.obj.uid));
      continue;
    }
    if (!isCustom(name) && isDate(first)) {
      if (!list.every((a) => isDate(a.value))) throw new KmipError('InvalidField', `${name} must be a date`);
      planDates(plan, name, list);
      continue;
    }
    if (name === 'Cryptographic Usage Mask') {
      const bits = list.reduce((m, a) => m | ((scalar(a.value) as number) >>> 0), 0) >>> 0;
      plan.filters.push({ kind: 'present', name });
      plan.post.push((v) => instances(v, name).some((a) => a.value.type === 'Integer' && ((a.value.value >>> 0) & bits) >>> 0 === bits));
      continue;
    }
    if (name === 'Usage Limits') {
      plan.filters.push({ kind: 'present', name });
      for (const r of list) {
        const count = child(r.value, Tag.UsageLimitsCount);
        const total = child(r.value, Tag.UsageLimitsTotal);
        const unit = child(r.value, Tag.UsageLimitsUnit);
        plan.post.push((v) =>
          instances(v, name).some((a) => {
            const cc = child(a.value, Tag.UsageLimitsCount);
            const ct = child(a.value, Tag.UsageLimitsTotal);
            const cu = child(a.value, Tag.UsageLimitsUnit);
            if (unit && (!cu || !partialMatch(unit, cu))) return false;
            if (count?.type === 'LongInteger' && (cc?.type !== 'LongInteger' || cc.value < count.value)) return false;
            if (total?.type === 'LongInteger' && (ct?.type !== 'LongInteger' || ct.value < total.value)) return false;
            return true;
          }),
        );
      }
      continue;
    }
    for (const r of list) {
      if (name === 'Name') {
        const nv = child(r.value, Tag.NameValue);
        if (nv?.type === 'TextString') plan.filters.push({ kind: 'equals', name, value: nv.value });
        else plan.filters.push({ kind: 'present', name });
        if (r.value.type !== 'Structure' || r.value.value.some((c) => c.tag !== Tag.NameValue)) {
          plan.post.push((v) => instances(v, name).some((a) => partialMatch(r.value, a.value)));
        }
        continue;
      }
      const sv = scalar(r.value);
      if (sv !== undefined) {
        plan.filters.push({ kind: 'equals', name, value: sv });
      } else if (isDate(r.value)) {
        // A custom attribute holding a date: that instant.
        const m = micros(r.value)!;
        plan.filters.push({ kind: 'range', name, from: seconds(r.value), to: seconds(r.value) + (m % 1_000_000n === 0n ? 0n : 1n) });
        plan.post.push((v) => instances(v, name).some((a) => micros(a.value) === m));
      } else {
        plan.filters.push({ kind: 'present', name });
        plan.post.push((v) => instances(v, name).some((a) => partialMatch(r.value, a.value)));
      }
    }
  }
  return plan;
}

function readCriteria(ctx: OperationContext, payload: StructureNode): KmipAttribute[] {
  if (isV2(ctx.version)) {
    const s = opt(payload, Tag.Attributes, 'Structure');
    return s ? attributesFrom2x(s) : [];
  }
  return all(payload, Tag.Attribute, 'Structure').map((s) => attributeFrom1x(s, true));
}

function nonNegative(payload: StructureNode, tag: number, what: string): number | undefined {
  const n = optValue(payload, tag, 'Integer');
  if (n !== undefined && n < 0) throw new KmipError('InvalidField', `${what} must not be negative`);
  return n;
}

/** The group's default member among `oldestFirst` (see the top of the file); [] when none. */
async function defaultMember(ctx: OperationContext, oldestFirst: string[]): Promise<string[]> {
  let best: { uid: string; fresh: boolean; changed: bigint } | undefined;
  for (const uid of oldestFirst) {
    let stored: StoredObject;
    try {
      stored = await ctx.objects.find(uid, 'read');
    } catch (e) {
      if (e instanceof KmipError) continue;
      throw e;
    }
    const view = objectView(ctx, stored);
    const fresh = view.attrs.some((a) => a.name === 'Fresh' && a.value.type === 'Boolean' && a.value.value);
    const lcd = view.attrs.find((a) => a.name === 'Last Change Date')?.value;
    const changed = lcd?.type === 'DateTime' ? lcd.value : 0n;
    if (!best) best = { uid, fresh, changed };
    else if (fresh && !best.fresh) best = { uid, fresh, changed };
    else if (!fresh && !best.fresh && changed < best.changed) best = { uid, fresh, changed };
    if (best.fresh) break;
  }
  return best ? [best.uid] : [];
}

export const locateHandler: OperationHandler = {
  operation: Enums.Operation.Locate,
  name: 'Locate',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const v2 = isV2(ctx.version);
    const maximum = nonNegative(payload, Tag.MaximumItems, 'Maximum Items');
    const offset = nonNegative(payload, Tag.OffsetItems, 'Offset Items') ?? 0;
    const SSM = Masks.StorageStatusMask;
    const mask = optValue(payload, Tag.StorageStatusMask, 'Integer') ?? SSM.OnLineStorage;
    const member = optValue(payload, Tag.ObjectGroupMember, 'Enumeration');
    const plan = buildPlan(readCriteria(ctx, payload));

    // Storage Status Mask: which objects are searched at all. Live objects are on-line, or
    // archival when archived (Archive Date set, archive.ts); destroyed ones are neither.
    const online = (mask & SSM.OnLineStorage) !== 0;
    const archival = (mask & SSM.ArchivalStorage) !== 0;
    const destroyed = v2 && (mask & SSM.DestroyedStorage) !== 0;
    const live = online || archival;
    const searchable = ALL_STATES.filter((s) => (isDestroyed(s) ? destroyed : live));
    if (searchable.length < ALL_STATES.length) plan.storedStates = intersect(plan.storedStates, searchable);
    if (live && online !== archival) {
      // Only one of the two live storages: the keystore filters on Archive Date, unless
      // destroyed objects (archived or not) are searched too.
      if (!destroyed) plan.filters.push({ kind: archival ? 'present' : 'absent', name: ARCHIVE_DATE });
      else plan.post.push((v) => isDestroyed(v.obj.state) || v.obj.attributes.some((a) => a.name === ARCHIVE_DATE) === archival);
    }

    if (member === Enums.ObjectGroupMember.GroupMemberFresh) plan.filters.push({ kind: 'equals', name: 'Fresh', value: true });
    else if (member !== undefined && member !== Enums.ObjectGroupMember.GroupMemberDefault) {
      throw new KmipError('InvalidField', `unknown Object Group Member ${member}`);
    }

    const q: { objectTypes?: number[]; states?: number[]; filters: AttributeFilter[] } = { filters: plan.filters };
    if (plan.objectTypes) q.objectTypes = plan.objectTypes;
    if (plan.storedStates) q.states = plan.storedStates;
    // The keystore answers oldest first; Locate answers newest first (2.1 §6.1.27).
    let matched = (await ctx.objects.locate(q)).reverse();
    if (plan.post.length > 0) {
      const kept: string[] = [];
      for (const uid of matched) {
        let stored: StoredObject;
        try {
          stored = await ctx.objects.find(uid, 'read');
        } catch (e) {
          if (e instanceof KmipError) continue; // gone since the query
          throw e;
        }
        const view = objectView(ctx, stored);
        if (plan.post.every((p) => p(view))) kept.push(uid);
      }
      matched = kept;
    }
    if (member === Enums.ObjectGroupMember.GroupMemberFresh) matched.reverse();
    if (member === Enums.ObjectGroupMember.GroupMemberDefault) matched = await defaultMember(ctx, matched.reverse());

    const page = matched.slice(offset, maximum === undefined ? undefined : offset + maximum);
    const out: TtlvNode[] = [];
    if (compareVersions(ctx.version, '1.3') >= 0) out.push(T.int(Tag.LocatedItems, matched.length));
    for (const uid of page) out.push(T.text(Tag.UniqueIdentifier, uid));
    return out;
  },
};

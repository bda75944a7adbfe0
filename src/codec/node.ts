import { tagName } from '../spec/index.js';
import type { ItemTypeName, NodeOf, StructureNode, TtlvNode, ValueOf } from '../ttlv/types.js';
import { KmipError } from './errors.js';

/**
 * Reading payload structures: find children by tag with the type the spec requires, and turn
 * every deviation into the KMIP error a client should get (Invalid Field / Missing Data).
 */

export function children(s: StructureNode, tag: number): TtlvNode[] {
  return s.value.filter((c) => c.tag === tag);
}

function typed<T extends ItemTypeName>(n: TtlvNode, type: T, where: string): NodeOf<T> {
  if (n.type !== type) {
    throw new KmipError('InvalidField', `${tagName(n.tag)} in ${where} must be a ${type}, not a ${n.type}`);
  }
  return n as NodeOf<T>;
}

/** The single child with `tag` and `type`, or undefined when absent. Two of them is an error. */
export function opt<T extends ItemTypeName>(s: StructureNode, tag: number, type: T): NodeOf<T> | undefined {
  let found: TtlvNode | undefined;
  for (const c of s.value) {
    if (c.tag !== tag) continue;
    if (found) throw new KmipError('InvalidField', `${tagName(tag)} appears more than once in ${tagName(s.tag)}`);
    found = c;
  }
  return found ? typed(found, type, tagName(s.tag)) : undefined;
}

export function req<T extends ItemTypeName>(s: StructureNode, tag: number, type: T): NodeOf<T> {
  const n = opt(s, tag, type);
  if (!n) throw new KmipError('MissingData', `${tagName(s.tag)} has no ${tagName(tag)}`);
  return n;
}

export function optValue<T extends ItemTypeName>(s: StructureNode, tag: number, type: T): ValueOf<T> | undefined {
  return opt(s, tag, type)?.value as ValueOf<T> | undefined;
}

export function reqValue<T extends ItemTypeName>(s: StructureNode, tag: number, type: T): ValueOf<T> {
  return req(s, tag, type).value as ValueOf<T>;
}

/** Every child with `tag`, each checked for `type`. */
export function all<T extends ItemTypeName>(s: StructureNode, tag: number, type: T): NodeOf<T>[] {
  return children(s, tag).map((c) => typed(c, type, tagName(s.tag)));
}

export function asStructure(n: TtlvNode | undefined, what: string): StructureNode {
  if (!n) throw new KmipError('MissingData', `missing ${what}`);
  if (n.type !== 'Structure') throw new KmipError('InvalidField', `${what} must be a Structure`);
  return n;
}

/** An empty structure for payloads that may be omitted (e.g. DiscoverVersions with no payload). */
export function emptyStructure(tag: number): StructureNode {
  return { tag, type: 'Structure', value: [] };
}

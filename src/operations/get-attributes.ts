/**
 * Get Attributes (KMIP 1.4 §4.11, 2.1 §6.1.20): the named attributes of one object, all
 * instances of each; with no name, every attribute the client's version knows (for PyKMIP
 * clients named in the policy, less the ones PyKMIP cannot decode: PYKMIP_UNDECODABLE below).
 *
 * An attribute the object does not have is simply left out of the answer, never an error (the
 * spec says so, and vCenter relies on it: it asks for x-Product, x-Vendor and x-Product_Version
 * one by one before setting them).
 */
import { KmipError } from '../codec/errors.js';
import { attributesForVersion, isV2 } from '../codec/attributes.js';
import { all, children } from '../codec/node.js';
import { Enums, Tag, type KmipVersion } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { internalName, loadView, referenceFrom2x } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';

/** The names asked for, in request order, or undefined for "all". Unknown 1.x names are kept (they match nothing). */
function requestedNames(ctx: OperationContext, payload: StructureNode): string[] | undefined {
  const names: string[] = isV2(ctx.version)
    ? children(payload, Tag.AttributeReference).map(referenceFrom2x)
    : all(payload, Tag.AttributeName, 'TextString').map((n) => internalName(n.value) ?? n.value);
  if (names.length === 0) return undefined;
  const seen = new Set<string>();
  for (const n of names) {
    // 1.1 test case 17.1 (TC-171): a name given twice fails the request with Invalid Message.
    if (seen.has(n)) throw new KmipError('InvalidMessage', `attribute '${n}' is named more than once`);
    seen.add(n);
  }
  return names;
}

/**
 * Attributes the Debian PyKMIP 0.10 client cannot decode: its client fails a whole Get Attributes
 * answer that holds an attribute it has no class for, and it has none for these, all of which
 * kmipd sets on a new key by itself (server-attributes.ts, Create's Original Creation Date and
 * Random Number Generator). For KMIP 1.0 clients Digest too: they get it in its 1.0 shape,
 * without Key Format Type (server-attributes.ts digestForVersion), which PyKMIP's Digest cannot
 * read. PyKMIP's `get_attributes(uid)` (no names) would otherwise fail on every key kmipd creates.
 *
 * An unnamed Get Attributes answers every attribute (1.4 §4.11, 2.1 §6.1.20) except, for the
 * identities the policy lists in `pykmipClients`, these: they are still answered when named, and
 * Get Attribute List names them.
 */
export const PYKMIP_UNDECODABLE: ReadonlySet<string> = new Set([
  'Original Creation Date',
  'Random Number Generator',
  'Always Sensitive',
  'Extractable',
  'Never Extractable',
  'Short Unique Identifier',
  'Key Format Type',
  'Protection Storage Mask',
]);

function pykmipUndecodable(name: string, version: KmipVersion): boolean {
  return PYKMIP_UNDECODABLE.has(name) || (version === '1.0' && name === 'Digest');
}

export const getAttributesHandler: OperationHandler = {
  operation: Enums.Operation.GetAttributes,
  name: 'GetAttributes',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const names = requestedNames(ctx, payload);
    const { attrs } = await loadView(ctx, uid, 'read');
    const leaveOut = names === undefined && ctx.objects.pykmipCompat();
    const selected = names === undefined ? attrs.filter((a) => !(leaveOut && pykmipUndecodable(a.name, ctx.version))) : names.flatMap((n) => attrs.filter((a) => a.name === n).sort((a, b) => a.index - b.index));
    return [T.text(Tag.UniqueIdentifier, uid), ...attributesForVersion(selected, ctx.version)];
  },
};

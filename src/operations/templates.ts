/**
 * Template objects (KMIP 1.0-1.2 §2.2.6; deprecated in 1.3, removed in 2.0): a named managed
 * object holding client-settable attributes, which a Template-Attribute can name (its Name
 * children) instead of listing them (1.4 §2.1.8 Template-Attribute Structures).
 *
 * - Register of a Template (register.ts): the Template structure's attributes are kept as the
 *   object's material; a Name among them names the template itself (as in the 1.0-1.2 test
 *   cases TC-312 / TC-314, which name the template inside it) and becomes, with the request's
 *   Template-Attribute, the Template object's own attributes. Get returns the Template.
 * - A Template-Attribute (or Common / Private Key / Public Key Template-Attribute) that names
 *   templates: each name must be a Template this client can see (Item Not Found otherwise); its
 *   attributes come first, and a single-instance attribute the request gives explicitly
 *   replaces the template's ("the attributes in the Template-Attribute take precedence"); the
 *   instances of a multi-instance attribute add up (TC-312-12: the template's x-ID is
 *   instance 0, the request's instance 1).
 *
 * Templates exist for 1.x clients only: a 2.x request has no Template-Attribute.
 */
import { attributeFrom1x, attributeTo1x, isV2, type KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { all, optValue, reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { attributeRule } from './attribute-rules.js';
import type { OperationContext } from './context.js';
import { isDestroyed, loadObject } from './lifecycle.js';
import { storedTree } from './stored-tree.js';

const TEMPLATE_ATTRIBUTE_TAGS: ReadonlySet<number> = new Set([
  Tag.TemplateAttribute,
  Tag.CommonTemplateAttribute,
  Tag.PrivateKeyTemplateAttribute,
  Tag.PublicKeyTemplateAttribute,
]);

/** A registered Template: the attributes it applies, and the names that name it. */
export interface ParsedTemplate {
  /** What the server keeps as the object's material: the Template without its Name(s). */
  object: StructureNode;
  names: KmipAttribute[];
}

export function parseTemplate(obj: StructureNode): ParsedTemplate {
  const attrs = all(obj, Tag.Attribute, 'Structure').map((a) => attributeFrom1x(a));
  if (attrs.length === 0) throw new KmipError('MissingData', 'the Template holds no attributes');
  const names = attrs.filter((a) => a.name === 'Name');
  const rest = attrs.filter((a) => a.name !== 'Name');
  return { object: T.struct(Tag.Template, rest.map((a) => attributeTo1x(a, false))), names };
}

/** The payload with every Template-Attribute's template names replaced by the templates' attributes. */
export async function expandTemplateReferences(ctx: OperationContext, payload: StructureNode): Promise<StructureNode> {
  if (isV2(ctx.version)) return payload;
  const refers = (c: TtlvNode) => TEMPLATE_ATTRIBUTE_TAGS.has(c.tag) && c.type === 'Structure' && c.value.some((k) => k.tag === Tag.Name);
  if (!payload.value.some(refers)) return payload;
  const value: TtlvNode[] = [];
  for (const c of payload.value) value.push(refers(c) ? await expand(ctx, c as StructureNode) : c);
  return T.struct(payload.tag, value);
}

async function expand(ctx: OperationContext, ta: StructureNode): Promise<StructureNode> {
  const explicit = ta.value.filter((c) => c.tag !== Tag.Name);
  const explicitNames = new Set(explicit.flatMap((c) => (c.type === 'Structure' ? [optValue(c, Tag.AttributeName, 'TextString')] : [])));
  const fromTemplates: TtlvNode[] = [];
  for (const ref of all(ta, Tag.Name, 'Structure')) {
    const name = reqValue(ref, Tag.NameValue, 'TextString');
    for (const a of await templateAttributes(ctx, name)) {
      const n = optValue(a, Tag.AttributeName, 'TextString');
      // A single-instance attribute given explicitly replaces the template's; a
      // multi-instance one (Object Group, custom attributes...) adds to it.
      if (!explicitNames.has(n) || (n !== undefined && attributeRule(n)?.multi === true)) fromTemplates.push(a);
    }
  }
  return T.struct(ta.tag, [...fromTemplates, ...explicit]);
}

async function templateAttributes(ctx: OperationContext, name: string): Promise<StructureNode[]> {
  const uids = await ctx.objects.locate({ objectTypes: [Enums.ObjectType.Template], filters: [{ kind: 'equals', name: 'Name', value: name }] });
  for (const uid of uids) {
    const obj = await loadObject(ctx, uid, 'read');
    if (isDestroyed(obj.state) || !obj.material) continue;
    const stored = await storedTree(ctx, obj);
    if (stored.tag !== Tag.Template) throw new KmipError('InternalServerError', 'the stored Template is malformed');
    return all(stored, Tag.Attribute, 'Structure');
  }
  throw new KmipError('ItemNotFound', `no Template named '${name}'`);
}

/**
 * Re-key Key Pair (KMIP 1.4 §4.5; 2.1 §6.1.43 "Re-key Key Pair"): a replacement for an existing
 * asymmetric key pair.
 *
 * Request: Private Key Unique Identifier (or the ID Placeholder), Offset, 1.x Common / Private
 * Key / Public Key Template-Attribute, 2.x Common / Private Key / Public Key Attributes (and
 * Protection Storage Masks). Response: the new Private Key and Public Key Unique Identifiers;
 * the ID Placeholder becomes the new private key's.
 *
 * The existing public key is the one the existing private key's Public Key Link names. The new
 * pair has the same parameters as the existing one, read from the existing private key itself
 * (RSA modulus length and public exponent; EC curve), and each new half takes its predecessor's
 * attributes as Re-key does for a symmetric key (1.4 §4.5 table "Re-key Key Pair Attribute
 * Requirements", the same rules as §4.4):
 * - Unique Identifier, Initial Date, Last Change Date, Fresh, Digest, State anew; Destroy,
 *   Compromise (Occurrence) and Archive Dates and Revocation Reason not set;
 * - Names move to the replacement; Usage Limits copied with the count reset;
 * - dates: without Offset, Activation / Deactivation Date copied; with Offset, Activation Date
 *   = now + Offset and Deactivation Date shifted by as much as the Activation Date moved;
 * - Links: the replacement gets a Replaced Object Link to its predecessor, which gets a
 *   Replacement Object Link back; the new halves point at each other (Public / Private Key
 *   Link), the old pair's links to each other and to replacements are not copied;
 * - attributes in the request replace the copied ones (Names and other multi-valued ones add).
 * The existing keys' states are not changed.
 */
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Tag } from '../spec/index.js';
import { decodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { attributeRule } from './attribute-rules.js';
import type { OperationContext, OperationHandler } from './context.js';
import { generatePair, halfAttributes, pairResponse, readPairRequest, storePair, type PairParameters } from './create-key-pair.js';
import { algorithmsFor, keyFacts, storedKey } from './key-formats.js';
import { NOT_COPIED as REKEY_NOT_COPIED } from './rekey.js';
import { dateNode, dateOf, enumOf, firstValue, intOf, isDestroyed, linkNode, linkType, loadObject, renumber, seconds, touched, withoutAttribute } from './lifecycle.js';

const OT = Enums.ObjectType;
const LT = Enums.LinkType;

/** As for ReKey, and algorithm and length come with the new pair's own parameters. */
const NOT_COPIED = new Set([...REKEY_NOT_COPIED, 'Cryptographic Algorithm', 'Cryptographic Length']);

/** Links not carried to the replacement: the pair's own and the replacement chain. */
const LINKS_NOT_COPIED: readonly number[] = [LT.ReplacementObjectLink, LT.ReplacedObjectLink, LT.PublicKeyLink, LT.PrivateKeyLink];

function resetUsageLimits(v: TtlvNode): TtlvNode {
  if (v.type !== 'Structure') return v;
  const total = v.value.find((c) => c.tag === Tag.UsageLimitsTotal);
  if (total?.type !== 'LongInteger') return v;
  const rest = v.value.filter((c) => c.tag !== Tag.UsageLimitsCount);
  const at = rest.indexOf(total) + 1;
  return T.struct(v.tag, [...rest.slice(0, at), T.long(Tag.UsageLimitsCount, total.value), ...rest.slice(at)]);
}

/** The attributes a replacement of `old` starts with: copied, dates per Offset, a Replaced Object Link, then the request's. */
export function replacementAttributes(old: StoredObject, requested: readonly KmipAttribute[], offset: number | undefined, now: Date): KmipAttribute[] {
  let attrs: KmipAttribute[] = old.attributes.filter((a) => {
    if (NOT_COPIED.has(a.name)) return false;
    if (a.name === 'Link') {
      const t = linkType(a.value);
      return t === undefined || !LINKS_NOT_COPIED.includes(t);
    }
    return true;
  });
  const ul = firstValue(old.attributes, 'Usage Limits');
  if (ul) attrs.push({ name: 'Usage Limits', index: 0, value: resetUsageLimits(ul) });
  if (offset === undefined) {
    for (const name of ['Activation Date', 'Process Start Date', 'Protect Stop Date', 'Deactivation Date']) {
      const v = firstValue(old.attributes, name);
      if (v) attrs.push({ name, index: 0, value: v });
    }
  } else {
    const newActivation = seconds(now) + BigInt(offset);
    attrs.push({ name: 'Activation Date', index: 0, value: dateNode(Tag.ActivationDate, newActivation) });
    const oldActivation = dateOf(old.attributes, 'Activation Date');
    const deactivation = dateOf(old.attributes, 'Deactivation Date');
    if (oldActivation !== undefined && deactivation !== undefined) {
      attrs.push({ name: 'Deactivation Date', index: 0, value: dateNode(Tag.DeactivationDate, deactivation + (newActivation - oldActivation)) });
    }
  }
  attrs.push({ name: 'Link', index: 0, value: linkNode(LT.ReplacedObjectLink, old.uid) });
  for (const a of requested) {
    if (a.name === 'Cryptographic Algorithm' || a.name === 'Cryptographic Length') continue; // checked against the existing pair
    const multi = attributeRule(a.name)?.multi ?? true;
    if (!multi) attrs = attrs.filter((x) => x.name !== a.name);
    attrs.push({ name: a.name, index: 0, value: a.value });
  }
  return renumber(attrs);
}

/** The existing half after re-key: its names gone (moved to the replacement), a Replacement Object Link to it. */
function retired(old: StoredObject, replacement: string, now: Date): StoredObject {
  let attrs = withoutAttribute(old.attributes, 'Name');
  attrs = withoutAttribute(attrs, 'Link', (v) => linkType(v) === LT.ReplacementObjectLink);
  attrs = renumber([...attrs, { name: 'Link', index: 0, value: linkNode(LT.ReplacementObjectLink, replacement) }]);
  return touched({ ...old, attributes: attrs }, now);
}

function linkedUid(o: StoredObject, type: number): string | undefined {
  for (const a of o.attributes) {
    if (a.name !== 'Link' || linkType(a.value) !== type || a.value.type !== 'Structure') continue;
    const id = a.value.value.find((c) => c.tag === Tag.LinkedObjectIdentifier);
    if (id?.type === 'TextString') return id.value;
  }
  return undefined;
}

/** The parameters of the existing pair, from the private key's own material. */
async function existingParameters(ctx: OperationContext, priv: StoredObject): Promise<PairParameters> {
  const plain = await ctx.objects.material(priv);
  let stored: TtlvNode;
  try {
    stored = decodeTtlv(plain);
  } finally {
    plain.fill(0);
  }
  if (stored.type !== 'Structure') throw new KmipError('InternalServerError', 'the stored object is malformed');
  const { key } = storedKey(OT.PrivateKey, stored as StructureNode);
  const facts = keyFacts(key);
  const declared = enumOf(priv.attributes, 'Cryptographic Algorithm');
  const algorithm = declared !== undefined && algorithmsFor(facts.kind).includes(declared) ? declared : facts.algorithm;
  const p: PairParameters = { kind: facts.kind, algorithm, length: facts.length };
  if (facts.curve) p.curve = facts.curve;
  if (facts.publicExponent !== undefined) p.publicExponent = Number(facts.publicExponent);
  return p;
}

export const rekeyKeyPairHandler: OperationHandler = {
  operation: Enums.Operation.ReKeyKeyPair,
  name: 'ReKeyKeyPair',
  since: '1.1',
  objectTypes: [OT.PrivateKey, OT.PublicKey],
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = optValue(payload, Tag.PrivateKeyUniqueIdentifier, 'TextString') ?? ctx.idPlaceholder;
    if (uid === undefined) throw new KmipError('MissingData', 'no Private Key Unique Identifier and no ID Placeholder from an earlier batch item');
    const offset = optValue(payload, Tag.Offset, 'Interval');
    const req = readPairRequest(ctx, payload);
    const { priv: privReq, pub: pubReq } = halfAttributes(ctx, req);

    const oldPriv = await loadObject(ctx, uid, 'manage');
    if (oldPriv.objectType !== OT.PrivateKey) throw new KmipError('IllegalObjectType', 'Re-key Key Pair names the private key of the pair');
    if (isDestroyed(oldPriv.state)) throw new KmipError('ObjectDestroyed', 'the existing private key has been destroyed');
    const pubUid = linkedUid(oldPriv, LT.PublicKeyLink);
    if (pubUid === undefined) throw new KmipError('ItemNotFound', 'the private key has no Public Key Link to the public key of its pair');
    const oldPub = await loadObject(ctx, pubUid, 'manage');
    if (oldPub.objectType !== OT.PublicKey) throw new KmipError('IllegalObjectType', "the private key's Public Key Link does not name a public key");

    const params = await existingParameters(ctx, oldPriv);
    for (const attrs of [privReq, pubReq]) {
      const alg = enumOf(attrs, 'Cryptographic Algorithm');
      const len = intOf(attrs, 'Cryptographic Length');
      if ((alg !== undefined && alg !== params.algorithm) || (len !== undefined && len !== params.length)) {
        throw new KmipError('InvalidField', 'Re-key Key Pair keeps the Cryptographic Algorithm and Length of the existing pair');
      }
    }

    const now = ctx.now();
    const newPriv = ctx.objects.newUid();
    const newPub = ctx.objects.newUid();
    const { privateKey, publicKey } = await generatePair(params);
    const priv = replacementAttributes(oldPriv, privReq, offset, now);
    const pub = replacementAttributes(oldPub, pubReq, offset, now);
    await ctx.objects.save(oldPriv, retired(oldPriv, newPriv, now));
    await ctx.objects.save(oldPub, retired(oldPub, newPub, now));
    await storePair(ctx, { privUid: newPriv, pubUid: newPub, priv, pub, params, privateKey, publicKey, now });
    ctx.log.info({ privateKey: oldPriv.uid, publicKey: oldPub.uid, replacementPrivateKey: newPriv, replacementPublicKey: newPub }, 're-keyed a key pair');
    return pairResponse(ctx, newPriv, newPub);
  },
};

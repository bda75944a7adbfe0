/**
 * Get (KMIP 1.4 §4.11; 2.1 §6.1 "Get"): returns the object as it was created or registered.
 *
 * Request: Unique Identifier (or the ID Placeholder), Key Format Type, Key Compression Type,
 * Key Wrapping Specification, (1.4+) Key Wrap Type. Response: Object Type, Unique Identifier,
 * the object.
 *
 * - Symmetric keys come back in the format they were stored in (Raw for created keys); a Key
 *   Format Type of Raw or Transparent Symmetric Key is honoured by converting; any other is Key
 *   Format Type Not Supported.
 * - Key Wrapping Specification (key-wrapping.ts): the object comes back wrapped under the key
 *   the client names (AES key wrap RFC 3394 / 5649, RSA-OAEP), after conversion to the Key
 *   Format Type asked for. Key Compression Type only applies to EC keys (Key Compression Type
 *   Not Supported).
 * - Objects registered wrapped (Key Wrapping Data in their Key Block) come back as registered
 *   unless the client asks for another form: Key Wrap Type Not Wrapped (1.4 §4.11) or a Key
 *   Wrapping Specification. kmipd then unwraps them with the key their Encryption Key
 *   Information names (which the client must be able to use, see key-wrapping.ts); Key Wrap
 *   Type As Registered returns the stored form even with a Key Format Type (as stored only).
 * - Objects in every live state can be fetched, Pre-Active included (vCenter fetches a key
 *   before activating it). A destroyed object has no material: Object Destroyed (1.x: Item Not
 *   Found).
 * - Sensitive (1.4 §3.48) objects are never returned in plaintext (Sensitive), only wrapped; objects whose
 *   Extractable (1.4 §3.50) is false are not returned at all (Not Extractable).
 * - Key Format Type PKCS#12 (1.4+, Private Keys): the key with the certificates its PKCS#12
 *   Certificate Links name, in a PKCS#12 protected by the Secret Data its PKCS#12 Password Link
 *   names (pkcs12.ts), as the Key Value Byte String.
 * - Fresh (1.4 §3.34) turns false once the object has been served (a change of attributes, so
 *   Last Change Date moves too).
 */
import { KmipError } from '../codec/errors.js';
import { opt, optValue, req } from '../codec/node.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { decodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { StoredObject } from '../keystore/types.js';
import type { OperationContext, OperationHandler } from './context.js';
import { symmetricKeyObject } from './create.js';
import { boolOf, isDestroyed, loadObject, saveQuietly, withServerAttribute } from './lifecycle.js';
import { readKeyBlock } from './register.js';
import { asymmetricInFormat } from './key-formats.js';
import { certificateInFormat } from './certificates.js';
import { privateKeyAsPkcs12 } from './pkcs12.js';
import { isWrapped, readWrappingSpec, unwrapObject, wrapObject, wrappedInKeyMaterial, type WrappingSpec } from './key-wrapping.js';

const KFT = Enums.KeyFormatType;
const OT = Enums.ObjectType;

function formatName(f: number): string {
  return enumValueName('KeyFormatType', f) ?? String(f);
}

/** The stored object in the Key Format Type (and, EC keys, Key Compression Type) asked for (undefined: as stored). */
export function inFormat(objectType: number, stored: StructureNode, requested: number | undefined, compression?: number): StructureNode {
  if (objectType === OT.PrivateKey || objectType === OT.PublicKey) return asymmetricInFormat(objectType, stored, requested, compression);
  if (objectType === OT.Certificate) return certificateInFormat(stored, requested);
  if (objectType === OT.OpaqueObject || objectType === OT.Template || objectType === OT.CertificateRequest) {
    if (requested !== undefined) {
      const what = objectType === OT.Template ? ' Template' : objectType === OT.OpaqueObject ? 'n Opaque Object' : ' Certificate Request';
      throw new KmipError('KeyFormatTypeNotSupported', `a${what} has no Key Format Type`);
    }
    return stored;
  }
  const block = req(stored, Tag.KeyBlock, 'Structure');
  const parts = readKeyBlock(block);
  if (requested === undefined || requested === parts.format) return stored;
  if (objectType !== OT.SymmetricKey || parts.wrapping || !parts.key) {
    throw new KmipError('KeyFormatTypeNotSupported', `this object is kept in ${formatName(parts.format)} format and cannot be returned in ${formatName(requested)}`);
  }
  if (requested !== KFT.Raw && requested !== KFT.TransparentSymmetricKey) {
    throw new KmipError('KeyFormatTypeNotSupported', `a symmetric key is returned in Raw or Transparent Symmetric Key format, not ${formatName(requested)}`);
  }
  return symmetricKeyObject(parts.key, requested, parts.algorithm, parts.length);
}

/** What Get and Export read from a request: the form the client wants the object in. */
export interface ServeOptions {
  format?: number;
  compression?: number;
  wrapping?: WrappingSpec;
  wrapType?: number;
}

/** Key Format Type, Key Compression Type, Key Wrapping Specification and Key Wrap Type, checked. */
export function readServeOptions(payload: StructureNode): ServeOptions {
  const o: ServeOptions = {};
  const format = optValue(payload, Tag.KeyFormatType, 'Enumeration');
  if (format !== undefined) o.format = format;
  const compression = optValue(payload, Tag.KeyCompressionType, 'Enumeration');
  if (compression !== undefined) o.compression = compression;
  const wrappingNode = opt(payload, Tag.KeyWrappingSpecification, 'Structure');
  if (wrappingNode) o.wrapping = readWrappingSpec(wrappingNode);
  const wrapType = optValue(payload, Tag.KeyWrapType, 'Enumeration');
  if (wrapType !== undefined) o.wrapType = wrapType;
  if (wrapType !== undefined && wrapType !== Enums.KeyWrapType.NotWrapped && wrapType !== Enums.KeyWrapType.AsRegistered) {
    throw new KmipError('KeyWrapTypeNotSupported', `Key Wrap Type ${enumValueName('KeyWrapType', wrapType) ?? wrapType} is not supported`);
  }
  if (o.wrapping && wrapType === Enums.KeyWrapType.AsRegistered) {
    throw new KmipError('InvalidField', 'Key Wrap Type As Registered and a Key Wrapping Specification contradict each other');
  }
  return o;
}

/**
 * The object `obj` (found with 'material' access, not destroyed) as a client may receive it, in
 * the form `o` asks for: every rule of Get (Extractable, Sensitive, formats, wrapping) applies.
 * Get and Export both serve objects through this function and only through it.
 */
export async function servedObject(ctx: OperationContext, obj: StoredObject, o: ServeOptions): Promise<StructureNode> {
  if (!obj.material) throw new KmipError('KeyValueNotPresent', 'the object has no key material');
  const asymmetric = obj.objectType === OT.PrivateKey || obj.objectType === OT.PublicKey;
  if (o.compression !== undefined && !asymmetric) throw new KmipError('KeyCompressionTypeNotSupported', 'Key Compression Type applies to elliptic curve keys only');
  if (boolOf(obj.attributes, 'Extractable') === false) throw new KmipError('NotExtractable', 'the object is not extractable (Extractable is false)');

  const plain = await ctx.objects.material(obj);
  let decoded: TtlvNode;
  try {
    decoded = decodeTtlv(plain);
  } finally {
    plain.fill(0);
  }
  if (decoded.type !== 'Structure') throw new KmipError('InternalServerError', 'the stored object is malformed');
  let stored: StructureNode = decoded;
  const wrappedAsRegistered = isWrapped(stored);
  const registeredInKeyMaterial = wrappedInKeyMaterial(stored);
  // Unwrap what was registered wrapped when the client wants another form of it.
  if (wrappedAsRegistered && (o.wrapType === Enums.KeyWrapType.NotWrapped || o.wrapping)) stored = await unwrapObject(ctx, stored);
  if (boolOf(obj.attributes, 'Sensitive') === true && !isWrapped(stored) && !o.wrapping) {
    throw new KmipError('Sensitive', 'the object is sensitive and kmipd does not return it in plaintext');
  }
  let out: StructureNode;
  if (o.format === KFT.PKCS_12) {
    // A password-protected container of the key and its chain (pkcs12.ts); not wrapped further.
    if (o.wrapping) throw new KmipError('FeatureNotSupported', 'a PKCS#12 is protected by its password; it is not wrapped under another key');
    if (o.compression !== undefined) throw new KmipError('KeyCompressionTypeNotSupported', 'Key Compression Type does not apply to PKCS#12');
    out = await privateKeyAsPkcs12(ctx, obj, stored);
  } else out = inFormat(obj.objectType, stored, o.format, o.compression);
  if (o.wrapping) out = await wrapObject(ctx, out, obj.attributes, o.wrapping, registeredInKeyMaterial);
  return out;
}

export const getHandler: OperationHandler = {
  operation: Enums.Operation.Get,
  name: 'Get',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const options = readServeOptions(payload);
    const obj = await loadObject(ctx, uid, 'material');
    if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the object has been destroyed; only its attributes remain');
    const out = await servedObject(ctx, obj, options);

    const fresh = obj.attributes.find((a) => a.name === 'Fresh');
    if (fresh?.value.type === 'Boolean' && fresh.value.value) {
      await saveQuietly(ctx, obj, withServerAttribute(obj, 'Fresh', T.bool(Tag.Fresh, false), ctx.now()));
    }
    return [T.enum(Tag.ObjectType, obj.objectType), T.text(Tag.UniqueIdentifier, obj.uid), out];
  },
};

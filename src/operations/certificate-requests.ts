/**
 * Certificate Request objects (KMIP 2.0 / 2.1 §2.2 "Certificate Request"; Object Type 0x0A,
 * 2.0 and later): a managed object holding a client's certificate request, Certificate Request
 * Type and Certificate Request Value, which Certify may later name by its Certificate Request
 * Unique Identifier instead of carrying the request.
 *
 * kmipd reads PKCS#10 requests (Certificate Request Type PKCS_10: DER; PEM: the PEM text) and
 * checks them before keeping them as registered: the request must parse, and its
 * self-signature must verify with the public key it contains (src/pki/csr.ts, node:crypto); a
 * request that does not is refused with Invalid CSR. CRMF and PGP requests are not read:
 * Feature Not Supported. The Digest is SHA-256 over the Certificate Request Value. Get returns
 * the object as registered (no Key Format Type applies).
 */
import { KmipError } from '../codec/errors.js';
import { reqValue } from '../codec/node.js';
import { CsrError, verifyCsr } from '../pki/csr.js';
import { pemEncode } from '../pki/der.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode } from '../ttlv/index.js';
import type { OperationContext } from './context.js';
import { digestNode, isDestroyed, loadObject } from './lifecycle.js';
import type { RegisteredObject } from './register-objects.js';
import { storedTree } from './stored-tree.js';

const CRT = Enums.CertificateRequestType;

/** What Certify needs of a request. */
export interface CheckedRequest {
  spki: Uint8Array;
  subject: Uint8Array;
}

/** Reads and checks a certificate request (Certificate Request Type, the request's bytes). */
export function checkCertificateRequest(type: number, bytes: Uint8Array): CheckedRequest {
  let pem: string;
  if (type === CRT.PKCS_10) pem = pemEncode('CERTIFICATE REQUEST', bytes);
  else if (type === CRT.PEM) pem = Buffer.from(bytes).toString('latin1');
  else throw new KmipError('FeatureNotSupported', 'kmipd reads PKCS#10 requests (PKCS_10 or PEM), not CRMF or PGP');
  try {
    const { csr } = verifyCsr(pem);
    return { spki: csr.spki, subject: csr.subject };
  } catch (e) {
    if (e instanceof CsrError) throw new KmipError('InvalidCSR', e.message);
    throw e;
  }
}

/** Register's reading of a Certificate Request object: checked, kept as registered. */
export function parseCertificateRequestObject(obj: StructureNode): RegisteredObject {
  const type = reqValue(obj, Tag.CertificateRequestType, 'Enumeration');
  const value = reqValue(obj, Tag.CertificateRequestValue, 'ByteString');
  checkCertificateRequest(type, value);
  return {
    object: T.struct(Tag.CertificateRequest, [T.enum(Tag.CertificateRequestType, type), T.bytes(Tag.CertificateRequestValue, value)]),
    implicit: [],
    digest: digestNode(value, undefined),
  };
}

/** The stored Certificate Request `uid` names (the client must be able to read it), checked again. */
export async function storedCertificateRequest(ctx: OperationContext, uid: string): Promise<CheckedRequest> {
  const obj = await loadObject(ctx, uid, 'read');
  if (obj.objectType !== Enums.ObjectType.CertificateRequest) throw new KmipError('IllegalObjectType', `${uid} is not a Certificate Request`);
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the Certificate Request has been destroyed');
  const tree = await storedTree(ctx, obj);
  return checkCertificateRequest(reqValue(tree, Tag.CertificateRequestType, 'Enumeration'), reqValue(tree, Tag.CertificateRequestValue, 'ByteString'));
}

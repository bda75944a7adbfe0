/**
 * Validate (KMIP 1.x §4 "Validate"; 2.1 §6.1 "Validate"): the server checks one certificate
 * chain and answers a Validity Indicator (Valid, Invalid, Unknown).
 *
 * Request: Certificate objects (inline) and/or Unique Identifiers of Managed Certificate
 * objects; together they make one chain, in any order (the spec leaves the order and the method
 * of validation to the server). Validity Date: the moment at which every certificate must be
 * valid; now when absent.
 *
 * kmipd's method, with node:crypto's X509Certificate:
 * - the chain is built from the leaf (the one certificate that issued none of the others) up:
 *   each certificate's issuer is the one whose subject names it (checkIssued) and whose key
 *   verifies its signature; every given certificate must be on that one path (a set that is
 *   not one chain is Invalid);
 * - every certificate that issues another must be a CA (Basic Constraints);
 * - every certificate must be valid at the Validity Date (notBefore <= date <= notAfter);
 * - a stored certificate in the Compromised or Destroyed Compromised state makes it Invalid;
 * - trust: the top certificate must be, or be issued by, a trust anchor. kmipd's anchors are
 *   the server's own (ServerInfo.trustAnchors: kmipd's CA and the CAs of its client trust store,
 *   DATA/trust) and the self-signed certificates the client names by Unique Identifier: a
 *   certificate the client itself keeps in kmipd is one it chose to rely on. A self-signed
 *   certificate sent inline is not an anchor (anyone can make one): such a chain, and one whose
 *   top is issued by a CA kmipd does not know, is Unknown, not Valid.
 *
 * Any defect found (name chaining, signature, CA flag, dates, compromise) is Invalid even when
 * trust cannot be established. Revocation (CRL / OCSP) is not checked: kmipd does not fetch
 * them. A Unique Identifier the client may not read is Item Not Found, as everywhere.
 */
import { X509Certificate } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { optValue, reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { isDestroyed, loadObject } from './lifecycle.js';
import { storedTree } from './stored-tree.js';

const OT = Enums.ObjectType;
const VI = Enums.ValidityIndicator;
const ST = Enums.State;
/** Longest chain kmipd follows (beyond that the request is refused, not answered). */
const MAX_CERTIFICATES = 16;

interface ChainCert {
  x: X509Certificate;
  /** Named by Unique Identifier (a Managed Object the client may read). */
  stored: boolean;
  /** The stored object is Compromised (or Destroyed Compromised). */
  compromised: boolean;
}

function readX509(der: Uint8Array, what: string): X509Certificate {
  try {
    return new X509Certificate(Buffer.from(der));
  } catch {
    throw new KmipError('InvalidField', `${what} is not a DER X.509 certificate kmipd can read`);
  }
}

function inlineCertificate(node: StructureNode): X509Certificate {
  const type = reqValue(node, Tag.CertificateType, 'Enumeration');
  if (type !== Enums.CertificateType.X_509) throw new KmipError('FeatureNotSupported', 'kmipd validates X.509 certificates only');
  return readX509(reqValue(node, Tag.CertificateValue, 'ByteString'), 'a Certificate Value');
}

/** A stored certificate; 'compromised' for one destroyed after being compromised (its value is gone). */
async function storedCertificate(ctx: OperationContext, uid: string): Promise<ChainCert | 'compromised'> {
  const obj = await loadObject(ctx, uid, 'read');
  if (obj.objectType !== OT.Certificate) throw new KmipError('IllegalObjectType', `${uid} is not a Certificate`);
  const compromised = obj.state === ST.Compromised || obj.state === ST.DestroyedCompromised;
  if (isDestroyed(obj.state) && !compromised) throw new KmipError('ObjectDestroyed', `the certificate ${uid} has been destroyed`);
  if (isDestroyed(obj.state)) return 'compromised';
  const tree = await storedTree(ctx, obj);
  const value = tree.value.find((c) => c.tag === Tag.CertificateValue);
  if (value?.type !== 'ByteString') throw new KmipError('InternalServerError', 'the stored certificate is malformed');
  return { x: readX509(value.value, `the stored certificate ${uid}`), stored: true, compromised };
}

/** c was issued by issuer: names chain and issuer's key verifies c's signature. */
function issuedBy(c: X509Certificate, issuer: X509Certificate): boolean {
  if (!c.checkIssued(issuer)) return false;
  try {
    return c.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function selfSigned(c: X509Certificate): boolean {
  return issuedBy(c, c);
}

function validAt(c: X509Certificate, at: Date): boolean {
  const from = new Date(c.validFrom);
  const to = new Date(c.validTo);
  return !Number.isNaN(from.getTime()) && !Number.isNaN(to.getTime()) && from <= at && at <= to;
}

/**
 * Orders the certificates leaf first; undefined when they are not one chain (several leaves,
 * a certificate no other links to, a name link whose signature does not verify).
 */
function orderChain(certs: readonly ChainCert[]): ChainCert[] | undefined {
  // The leaf: the one certificate whose subject no other certificate names as its issuer.
  const isIssuerOfAnother = (c: ChainCert): boolean => certs.some((o) => o !== c && o.x.checkIssued(c.x));
  const leaves = certs.filter((c) => !isIssuerOfAnother(c));
  if (leaves.length !== 1) return undefined;
  const chain: ChainCert[] = [leaves[0]!];
  const rest = new Set(certs.filter((c) => c !== leaves[0]));
  while (rest.size > 0) {
    const current = chain[chain.length - 1]!;
    const next = [...rest].find((c) => issuedBy(current.x, c.x));
    if (!next) return undefined;
    chain.push(next);
    rest.delete(next);
  }
  return chain;
}

/** The Validity Indicator of a chain at a date, given the server's trust anchors. */
export function validateChain(certs: readonly ChainCert[], at: Date, anchors: readonly X509Certificate[]): number {
  if (certs.some((c) => c.compromised)) return VI.Invalid;
  const chain = orderChain(certs);
  if (!chain) return VI.Invalid;
  for (let i = 1; i < chain.length; i++) if (!chain[i]!.x.ca) return VI.Invalid;
  if (!chain.every((c) => validAt(c.x, at))) return VI.Invalid;
  const top = chain[chain.length - 1]!;
  if (top.x.checkIssued(top.x)) {
    // A self-issued top: its own signature must verify; trusted when an anchor or stored by the client.
    if (!selfSigned(top.x)) return VI.Invalid;
    if (top.stored) return VI.Valid;
    return anchors.some((a) => a.raw.equals(top.x.raw)) ? VI.Valid : VI.Unknown;
  }
  const anchor = anchors.find((a) => issuedBy(top.x, a));
  if (!anchor) return VI.Unknown;
  if (!anchor.ca || !validAt(anchor, at)) return VI.Invalid;
  return VI.Valid;
}

export const validateHandler: OperationHandler = {
  operation: Enums.Operation.Validate,
  name: 'Validate',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const given = payload.value.filter((c) => c.tag === Tag.Certificate || c.tag === Tag.UniqueIdentifier);
    if (given.length === 0) throw new KmipError('MissingData', 'Validate needs Certificates or Unique Identifiers of Certificates');
    if (given.length > MAX_CERTIFICATES) throw new KmipError('InvalidMessage', `a chain of more than ${MAX_CERTIFICATES} certificates`);
    const date = optValue(payload, Tag.ValidityDate, 'DateTime');
    const at = date === undefined ? ctx.now() : new Date(Number(date) * 1000);
    const certs: ChainCert[] = [];
    let compromised = false;
    for (const c of given) {
      if (c.tag === Tag.Certificate) {
        if (c.type !== 'Structure') throw new KmipError('InvalidField', 'a Certificate is a Structure');
        certs.push({ x: inlineCertificate(c), stored: false, compromised: false });
      } else {
        if (c.type !== 'TextString') throw new KmipError('InvalidField', 'a Unique Identifier is a Text String');
        const s = await storedCertificate(ctx, c.value);
        if (s === 'compromised') compromised = true;
        else certs.push(s);
      }
    }
    let indicator: number;
    if (compromised) {
      indicator = VI.Invalid;
    } else {
      // The same certificate given twice (inline and by uid) counts once; stored wins (trust).
      const unique = new Map<string, ChainCert>();
      for (const c of certs) {
        const fp = c.x.fingerprint256;
        const seen = unique.get(fp);
        if (!seen || (c.stored && !seen.stored)) unique.set(fp, c);
      }
      const anchors = ctx.server.trustAnchors?.() ?? [];
      indicator = validateChain([...unique.values()], at, anchors);
    }
    ctx.log.debug({ certificates: certs.length, indicator }, 'Validate');
    return [T.enum(Tag.ValidityIndicator, indicator)];
  },
};

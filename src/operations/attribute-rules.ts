/**
 * Who may set, change and delete each standard attribute of KMIP 1.0-2.1, as data.
 *
 * Sources: each attribute's rules table in KMIP 1.4 §3 ("Shall always have a value / Initially
 * set by / Modifiable by server / Modifiable by client / Deletable by client / Multiple instances
 * permitted / When implicitly set / Applies to Object Types") and the matching tables of KMIP
 * 2.0/2.1 §4. `ref` gives the 1.4 section number (when the attribute exists in 1.x) and names
 * the 2.1 section (chapter 4 lists the attributes alphabetically, one section each). The rules of
 * the 2.1-only Rotate attributes follow their descriptions (Rotate Date / Generation / Latest are
 * maintained by the server).
 *
 * Interpretation used throughout:
 * - serverOnly: "Initially set by: Server" and not modifiable by the client. The client may not
 *   supply it at Create/Register, nor add, modify or delete it. (Cryptographic Algorithm and
 *   Length are "set by server" in the tables but come from the client's template or key block,
 *   so they are clientInitial, not serverOnly.)
 * - clientInitial: may appear in a Create/Register/Re-key template (or 2.x Attributes).
 * - clientModify: "Modifiable by client"; 'preActive' where the table restricts it to objects
 *   in the Pre-Active state (Activation Date, Process Start Date, Protect Stop Date).
 *   Deactivation Date is modifiable only in Pre-Active or Active (checked in
 *   checkClientAttribute).
 * - objectTypes: only where the spec restricts an attribute to certain object types; undefined
 *   means every object type (kept lenient where 1.x and 2.x tables differ).
 */
import { attributesFrom2x, isV2, templateAttributeFrom1x, type KmipAttribute } from '../codec/attributes.js';
import { KmipError, type ResultReasonName } from '../codec/errors.js';
import { opt } from '../codec/node.js';
import { Enums, Tag, enumValueName, tagInfo, tagName, type KmipVersion } from '../spec/index.js';
import type { StructureNode } from '../ttlv/types.js';

export interface AttributeRule {
  name: string;
  multi: boolean;
  serverOnly: boolean;
  clientInitial: boolean;
  clientModify: boolean | 'preActive';
  clientDelete: boolean;
  objectTypes?: readonly number[];
  ref: string;
}

export type ClientAttributeOp = 'create' | 'register' | 'add' | 'modify' | 'delete' | 'set';

const OT = Enums.ObjectType;
const CERTIFICATES: readonly number[] = [OT.Certificate];
const CERTIFICATE_LIKE: readonly number[] = [OT.Certificate, OT.PGPKey];
const ASYMMETRIC: readonly number[] = [OT.PublicKey, OT.PrivateKey, OT.Template];
const SYMMETRIC_LIKE: readonly number[] = [OT.SymmetricKey, OT.SplitKey, OT.Template];
const OPAQUE: readonly number[] = [OT.OpaqueObject];

type Row = Omit<AttributeRule, 'name' | 'ref'> & { s14?: string; only1x?: boolean };

/** The server sets it; the client never does. */
function server(s14: string | undefined, multi = false, objectTypes?: readonly number[]): Row {
  return { multi, serverOnly: true, clientInitial: false, clientModify: false, clientDelete: false, ...(s14 ? { s14 } : {}), ...(objectTypes ? { objectTypes } : {}) };
}

/** The client may supply it initially (template, Attributes, key block); then fixed. */
function initial(s14: string | undefined, multi = false, objectTypes?: readonly number[]): Row {
  return { multi, serverOnly: false, clientInitial: true, clientModify: false, clientDelete: false, ...(s14 ? { s14 } : {}), ...(objectTypes ? { objectTypes } : {}) };
}

/** Client-owned: set, modified (possibly only while Pre-Active) and, unless `del` is false, deleted by the client. */
function client(s14: string | undefined, o: { multi?: boolean; modify?: boolean | 'preActive'; del?: boolean; objectTypes?: readonly number[] } = {}): Row {
  return {
    multi: o.multi ?? false,
    serverOnly: false,
    clientInitial: true,
    clientModify: o.modify ?? true,
    clientDelete: o.del ?? true,
    ...(s14 ? { s14 } : {}),
    ...(o.objectTypes ? { objectTypes: o.objectTypes } : {}),
  };
}

/** Removed in 2.0 (deprecated in 1.x): 1.x clients only. */
function only1x(r: Row): Row {
  return { ...r, only1x: true };
}

/**
 * Every standard attribute of KMIP 1.0-2.1, keyed by its specification name (the name the
 * internal attribute model uses), with its KMIP 1.4 §3 section number where it exists in 1.x.
 * 2.x attributes are cited by name: KMIP 2.0/2.1 §4 list them alphabetically, one section each.
 */
const TABLE: Readonly<Record<string, Row>> = {
  'Unique Identifier': server('3.1'),
  Name: client('3.2', { multi: true }),
  'Object Type': server('3.3'),
  'Cryptographic Algorithm': initial('3.4'),
  'Cryptographic Length': initial('3.5'),
  // Multi-instance in 1.x; the client may add, modify and delete instances.
  'Cryptographic Parameters': client('3.6', { multi: true }),
  'Cryptographic Domain Parameters': initial('3.7', false, ASYMMETRIC),
  'Certificate Type': server('3.8', false, CERTIFICATE_LIKE),
  'Certificate Length': server('3.9', false, CERTIFICATE_LIKE),
  'X.509 Certificate Identifier': server('3.10', false, CERTIFICATES),
  'X.509 Certificate Subject': server('3.11', false, CERTIFICATES),
  'X.509 Certificate Issuer': server('3.12', false, CERTIFICATES),
  'Certificate Identifier': only1x(server('3.13', false, CERTIFICATES)),
  'Certificate Subject': only1x(server('3.14', false, CERTIFICATES)),
  'Certificate Issuer': only1x(server('3.15', false, CERTIFICATES)),
  'Digital Signature Algorithm': server('3.16', true, CERTIFICATE_LIKE),
  // Multi-instance: one per hashing algorithm / key format type.
  Digest: server('3.17', true),
  'Operation Policy Name': only1x(client('3.18')),
  // "Modifiable by client: No" in 1.x and 2.x.
  'Cryptographic Usage Mask': initial('3.19'),
  'Lease Time': server('3.20'),
  'Usage Limits': client('3.21'),
  State: server('3.22'),
  'Initial Date': server('3.23'),
  'Activation Date': client('3.24', { modify: 'preActive', del: false }),
  // Also on key pairs: the mandatory profile test case CS-AC-M-8 (1.3-2.1) registers an RSA
  // private and public key with both dates and expects Sign / Verify refused by them.
  'Process Start Date': client('3.25', { modify: 'preActive', del: false, objectTypes: [...SYMMETRIC_LIKE, OT.PrivateKey, OT.PublicKey] }),
  // Also on Secret Data: the 2.x test cases register a Secret Data password with a Protect Stop
  // Date and expect success (mandatory BL-M-4-21, TC-IMPEXP-3-20).
  'Protect Stop Date': client('3.26', { modify: 'preActive', del: false, objectTypes: [...SYMMETRIC_LIKE, OT.PrivateKey, OT.PublicKey, OT.SecretData] }),
  // Modifiable only in Pre-Active or Active (see checkClientAttribute).
  'Deactivation Date': client('3.27', { modify: true, del: false }),
  'Destroy Date': server('3.28'),
  'Compromise Occurrence Date': server('3.29'),
  'Compromise Date': server('3.30'),
  'Revocation Reason': server('3.31'),
  'Archive Date': server('3.32'),
  'Object Group': client('3.33', { multi: true }),
  // Initially set by the server or the client (1.4 §3.34; TC-152 registers keys with Fresh true); then the server's.
  Fresh: initial('3.34'),
  Link: client('3.35', { multi: true }),
  'Application Specific Information': client('3.36', { multi: true }),
  'Contact Information': client('3.37'),
  'Last Change Date': server('3.38'),
  // 3.39 Custom Attribute: see customRule.
  'Alternative Name': client('3.40', { multi: true }),
  'Key Value Present': server('3.41'),
  'Key Value Location': initial('3.42', true),
  'Original Creation Date': initial('3.43'),
  'Random Number Generator': initial('3.44'),
  'PKCS#12 Friendly Name': client('3.45'),
  Description: client('3.46'),
  Comment: client('3.47'),
  // Sensitive and Extractable: set and changed by the client, never deleted.
  Sensitive: client('3.48', { del: false }),
  'Always Sensitive': server('3.49'),
  Extractable: client('3.50', { del: false }),
  'Never Extractable': server('3.51'),
  // Attributes of KMIP 2.0/2.1 only (Object Group Member's tag exists since 1.1).
  'Object Group Member': client(undefined),
  'Key Format Type': server(undefined),
  'NIST Key Type': initial(undefined),
  'Opaque Data Type': initial(undefined, false, OPAQUE),
  'Protection Level': client(undefined),
  'Protection Period': client(undefined),
  'Quantum Safe': client(undefined),
  'Short Unique Identifier': server(undefined),
  'Protection Storage Mask': server(undefined),
  'Rotate Automatic': client(undefined),
  'Rotate Date': server(undefined),
  'Rotate Generation': server(undefined),
  'Rotate Interval': client(undefined),
  'Rotate Latest': server(undefined),
  'Rotate Name': client(undefined),
  'Rotate Offset': client(undefined),
  // Certificate Attributes (tags of 1.4; 2.x attributes): set by the server from the certificate
  // at Register / Certify, one instance per value of the name (src/operations/certificates.ts).
  ...Object.fromEntries(
    ['Subject', 'Issuer'].flatMap((who) =>
      ['CN', 'O', 'OU', 'Email', 'C', 'ST', 'L', 'UID', 'Serial Number', 'Title', 'DC', 'DN Qualifier'].map((f): [string, Row] => [
        `Certificate ${who} ${f}`,
        server(undefined, true, CERTIFICATES),
      ]),
    ),
  ),
};

function refOf(name: string, r: Row): string {
  const parts: string[] = [];
  if (r.s14) parts.push(`KMIP 1.4 §${r.s14}${r.only1x ? ' (removed in 2.0)' : ''}`);
  if (!r.only1x) parts.push(`KMIP 2.1 §4 "${name}"`);
  return parts.join('; ');
}

/** The table with its references, keyed by specification name. */
export const ATTRIBUTE_RULES: Readonly<Record<string, AttributeRule>> = Object.fromEntries(
  Object.entries(TABLE).map(([name, r]): [string, AttributeRule] => {
    const rule: AttributeRule = {
      name,
      multi: r.multi,
      serverOnly: r.serverOnly,
      clientInitial: r.clientInitial,
      clientModify: r.clientModify,
      clientDelete: r.clientDelete,
      ref: refOf(name, r),
    };
    if (r.objectTypes) rule.objectTypes = r.objectTypes;
    return [name, rule];
  }),
);

/** "Cryptographic Usage Mask", "CryptographicUsageMask", "cryptographic usage mask": one key. */
function squash(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

const byKey = new Map<string, AttributeRule>();
for (const rule of Object.values(ATTRIBUTE_RULES)) byKey.set(squash(rule.name), rule);

/** Custom attributes: 1.x "x-"/"y-" names, 2.x Vendor Attributes ("<vendor>-<name>"). */
export function isCustomAttributeName(name: string): boolean {
  return /^[xy]-/i.test(name) || (name.includes('-') && !byKey.has(squash(name)));
}

function customRule(name: string): AttributeRule {
  return { name, multi: true, serverOnly: false, clientInitial: true, clientModify: true, clientDelete: true, ref: 'KMIP 1.4 §3.39 Custom Attribute; KMIP 2.1 §4 "Vendor Attribute"' };
}

/** The rule of a standard attribute (by spec or normalised name), or of a custom attribute; undefined for unknown names. */
export function attributeRule(name: string): AttributeRule | undefined {
  const r = byKey.get(squash(name));
  if (r) return r;
  return isCustomAttributeName(name) ? customRule(name) : undefined;
}

function objectTypeName(t: number): string {
  return enumValueName('ObjectType', t) ?? `object type ${t}`;
}

/**
 * Throws the KmipError a client should get when it may not perform `op` on attribute `name` of
 * an object of `objectType` in `state` (the state is ignored for create/register). Reasons are
 * the 2.x ones; the executor maps them to the nearest 1.x reason (Permission Denied, Invalid
 * Field...) for 1.x clients.
 */
export function checkClientAttribute(name: string, op: ClientAttributeOp, objectType: number, state: number): void {
  const rule = attributeRule(name);
  if (!rule) throw new KmipError('UnsupportedAttribute', `'${name}' is not an attribute kmipd knows`);
  if (rule.objectTypes && !rule.objectTypes.includes(objectType)) {
    throw new KmipError('InvalidAttribute', `${rule.name} does not apply to a ${objectTypeName(objectType)}`);
  }
  const readOnly = (reason: ResultReasonName): never => {
    throw new KmipError(reason, `${rule.name} is set by the server and cannot be ${op === 'delete' ? 'deleted' : 'set'} by a client`);
  };
  switch (op) {
    case 'create':
    case 'register':
      if (!rule.clientInitial) readOnly('ReadOnlyAttribute');
      return;
    case 'add':
      // Adding an instance is setting it initially (single-valued: only when absent, which the
      // caller checks) or changing the object's attributes. A single-valued attribute added is
      // its first value, not a modification: the Pre-Active restriction on modifying Activation
      // Date, Process Start Date and Protect Stop Date (all single-valued) does not apply (OASIS TC-51: Protect
      // Stop Date added once an added past Activation Date has made the key Active).
      if (rule.serverOnly || (!rule.clientInitial && !rule.clientModify)) readOnly('AttributeReadOnly');
      if (rule.clientModify !== 'preActive') checkStateForChange(rule, state);
      return;
    case 'set':
      if (rule.multi) throw new KmipError('MultiValuedAttribute', `${rule.name} has several instances; use Add, Modify or Delete Attribute`);
      if (rule.serverOnly || (!rule.clientInitial && !rule.clientModify)) readOnly('AttributeReadOnly');
      checkStateForChange(rule, state);
      return;
    case 'modify':
      if (rule.serverOnly || rule.clientModify === false) readOnly('AttributeReadOnly');
      checkStateForChange(rule, state);
      return;
    case 'delete':
      if (rule.serverOnly || !rule.clientDelete) readOnly('AttributeReadOnly');
      return;
  }
}

function checkStateForChange(rule: AttributeRule, state: number): void {
  const S = Enums.State;
  if (rule.clientModify === 'preActive' && state !== S.PreActive) {
    throw new KmipError('WrongKeyLifecycleState', `${rule.name} can only be changed while the object is Pre-Active`);
  }
  if (rule.name === 'Deactivation Date' && state !== S.PreActive && state !== S.Active) {
    throw new KmipError('WrongKeyLifecycleState', 'Deactivation Date can only be changed while the object is Pre-Active or Active');
  }
}

/**
 * Checks the attributes a client supplies at Create, Register or Re-key: each one allowed,
 * single-valued attributes at most once. A duplicate single-valued attribute is Attribute
 * Single Valued for 2.x clients and Invalid Field for 1.x (whose nearest reason, Index Out Of
 * Bounds, would mislead).
 */
export function checkInitialAttributes(attrs: readonly KmipAttribute[], op: 'create' | 'register', objectType: number, version: KmipVersion): void {
  const seen = new Set<string>();
  for (const a of attrs) {
    checkClientAttribute(a.name, op, objectType, Enums.State.PreActive);
    const rule = attributeRule(a.name);
    if (rule && !rule.multi) {
      if (seen.has(rule.name)) {
        throw new KmipError(version.startsWith('2.') ? 'AttributeSingleValued' : 'InvalidField', `${rule.name} is given more than once; it takes a single value`);
      }
      seen.add(rule.name);
    }
  }
}

/**
 * The attributes a Create / Register / Re-key request supplies: the 1.x Template-Attribute or
 * the 2.x Attributes structure (either shape is read whatever the version, the version's own
 * first). Values are checked against the dictionary's item type for the attribute's tag.
 * `required`: the request structure must be present (Create).
 */
export function readRequestAttributes(payload: StructureNode, version: KmipVersion, required: boolean): KmipAttribute[] {
  const v2 = opt(payload, Tag.Attributes, 'Structure');
  const v1 = opt(payload, Tag.TemplateAttribute, 'Structure');
  let attrs: KmipAttribute[];
  if (v2 && (isV2(version) || !v1)) attrs = attributesFrom2x(v2);
  else if (v1) attrs = templateAttributeFrom1x(v1);
  else if (required) throw new KmipError('MissingData', `the request has no ${isV2(version) ? 'Attributes' : 'Template-Attribute'}`);
  else attrs = [];
  for (const a of attrs) checkValueType(a);
  return attrs;
}

/** Invalid Attribute Value (1.x: Invalid Field) when a standard attribute's value has the wrong item type. */
export function checkValueType(a: KmipAttribute): void {
  if (a.value.tag === Tag.AttributeValue) return; // custom attribute: any type
  const t = tagInfo(a.value.tag)?.type;
  if (t === undefined) return;
  const allowed: readonly string[] = typeof t === 'string' ? [t] : t;
  if (!allowed.includes(a.value.type)) {
    throw new KmipError('InvalidAttributeValue', `${a.name} must be a ${allowed.join(' or ')}, not a ${a.value.type}`);
  }
  if (a.name === 'Name') {
    const nv = a.value.type === 'Structure' ? a.value.value.find((c) => c.tag === Tag.NameValue) : undefined;
    if (nv?.type !== 'TextString') throw new KmipError('InvalidAttributeValue', `Name needs a ${tagName(Tag.NameValue)} text string`);
  }
}

import t from 'tap';
import { KmipError } from '../../src/codec/errors.js';
import { ATTRIBUTE_RULES, attributeRule, checkClientAttribute } from '../../src/operations/attribute-rules.js';
import { Enums, tagByName } from '../../src/spec/index.js';

const OT = Enums.ObjectType;
const S = Enums.State;

function reasonOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof KmipError) return e.reason;
    throw e;
  }
}

t.test('the table', async (t) => {
  for (const [name, r] of Object.entries(ATTRIBUTE_RULES)) {
    t.equal(r.name, name);
    t.ok(tagByName(name), `${name} is a tag of the dictionary`);
    t.match(r.ref, /KMIP (1\.4 §3\.\d+|2\.1 §4)/, `${name} cites its section`);
    t.notOk(r.serverOnly && (r.clientInitial || r.clientModify || r.clientDelete), `${name}: server-only means no client rights`);
  }
  for (const n of ['Unique Identifier', 'Object Type', 'State', 'Initial Date', 'Last Change Date', 'Digest', 'Destroy Date', 'Compromise Date', 'Compromise Occurrence Date', 'Revocation Reason', 'Key Value Present', 'Always Sensitive', 'Never Extractable', 'Short Unique Identifier', 'Lease Time']) {
    t.equal(attributeRule(n)?.serverOnly, true, `${n} is server-only`);
  }
  for (const n of ['Activation Date', 'Process Start Date', 'Protect Stop Date']) t.equal(attributeRule(n)?.clientModify, 'preActive', `${n}: Pre-Active only`);
  const fresh = attributeRule('Fresh');
  t.ok(fresh && fresh.clientInitial && !fresh.clientModify && !fresh.clientDelete, 'Fresh: set initially by the server or the client (TC-152), then the server\'s');
  for (const n of ['Name', 'Link', 'Object Group', 'Application Specific Information', 'Alternative Name', 'Digest']) t.equal(attributeRule(n)?.multi, true, `${n} is multi-instance`);
  t.equal(attributeRule('CryptographicUsageMask')?.name, 'Cryptographic Usage Mask', 'normalised names work');
  t.equal(attributeRule('x-Product')?.multi, true, 'custom: multi');
  t.equal(attributeRule('y-Thing')?.clientDelete, true, 'custom: client-controlled');
  t.equal(attributeRule('VMware-Thing')?.clientModify, true, 'vendor: client-controlled');
  t.equal(attributeRule('Not An Attribute'), undefined, 'unknown');
});

t.test('checkClientAttribute', async (t) => {
  const key = OT.SymmetricKey;
  t.equal(reasonOf(() => checkClientAttribute('Cryptographic Algorithm', 'create', key, S.PreActive)), undefined, 'algorithm at Create');
  t.equal(reasonOf(() => checkClientAttribute('State', 'create', key, S.PreActive)), 'ReadOnlyAttribute', 'State at Create');
  t.equal(reasonOf(() => checkClientAttribute('State', 'modify', key, S.Active)), 'AttributeReadOnly', 'State: modify (BL-M-7-21)');
  t.equal(reasonOf(() => checkClientAttribute('Cryptographic Algorithm', 'modify', key, S.PreActive)), 'AttributeReadOnly', 'algorithm: modify');
  t.equal(reasonOf(() => checkClientAttribute('Activation Date', 'modify', key, S.PreActive)), undefined, 'Activation Date while Pre-Active');
  t.equal(reasonOf(() => checkClientAttribute('Activation Date', 'modify', key, S.Active)), 'WrongKeyLifecycleState', 'Activation Date once Active (SKLC-M-3-21)');
  t.equal(reasonOf(() => checkClientAttribute('Activation Date', 'add', key, S.PreActive)), undefined, 'Activation Date added while Pre-Active (TC-51)');
  t.equal(reasonOf(() => checkClientAttribute('Activation Date', 'delete', key, S.PreActive)), 'AttributeReadOnly', 'Activation Date is not deletable');
  t.equal(reasonOf(() => checkClientAttribute('Deactivation Date', 'modify', key, S.Active)), undefined, 'Deactivation Date while Active');
  t.equal(reasonOf(() => checkClientAttribute('Deactivation Date', 'modify', key, S.Deactivated)), 'WrongKeyLifecycleState', 'Deactivation Date once Deactivated');
  t.equal(reasonOf(() => checkClientAttribute('Name', 'delete', key, S.Active)), undefined, 'Name is deletable');
  t.equal(reasonOf(() => checkClientAttribute('Name', 'set', key, S.Active)), 'MultiValuedAttribute', 'Set Attribute on a multi-instance attribute');
  t.equal(reasonOf(() => checkClientAttribute('Description', 'set', key, S.Active)), undefined, 'Set Attribute on Description');
  t.equal(reasonOf(() => checkClientAttribute('x-Vendor', 'add', key, S.Destroyed)), undefined, 'custom attributes any time');
  t.equal(reasonOf(() => checkClientAttribute('Usage Limits', 'add', key, S.Active)), undefined, 'Usage Limits (TC-51)');
  t.equal(reasonOf(() => checkClientAttribute('Protect Stop Date', 'add', key, S.PreActive)), undefined, 'Protect Stop Date on a symmetric key');
  t.equal(reasonOf(() => checkClientAttribute('Protect Stop Date', 'add', OT.PrivateKey, S.PreActive)), undefined, 'Protect Stop Date on a private key (CS-AC-M-8)');
  t.equal(reasonOf(() => checkClientAttribute('Protect Stop Date', 'add', OT.Certificate, S.PreActive)), 'InvalidAttribute', 'Protect Stop Date on a certificate');
  t.equal(reasonOf(() => checkClientAttribute('Protect Stop Date', 'add', key, S.Active)), undefined, 'Protect Stop Date first set once Active (TC-51)');
  t.equal(reasonOf(() => checkClientAttribute('Protect Stop Date', 'modify', key, S.Active)), 'WrongKeyLifecycleState', 'Protect Stop Date changed once Active');
  t.equal(reasonOf(() => checkClientAttribute('Certificate Type', 'create', key, S.PreActive)), 'InvalidAttribute', 'Certificate Type on a symmetric key');
  t.equal(reasonOf(() => checkClientAttribute('Cryptographic Usage Mask', 'register', OT.OpaqueObject, S.PreActive)), undefined, 'usage mask on an Opaque Object (BL-M-5-21)');
  t.equal(reasonOf(() => checkClientAttribute('Bogus', 'add', key, S.Active)), 'UnsupportedAttribute', 'unknown attribute');
});

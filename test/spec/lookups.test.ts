import t from 'tap';
import {
  Enums,
  Masks,
  Tag,
  compareVersions,
  enumForTag,
  enumInfo,
  enumValueByName,
  enumValueInVersion,
  enumValueName,
  maskForTag,
  maskNames,
  maskValue,
  parseVersion,
  tagByName,
  tagInVersion,
  tagInfo,
  tagName,
} from '../../src/spec/index.js';

t.test('tags', (t) => {
  t.equal(Tag.ActivationDate, 0x420001);
  t.equal(Tag.CryptographicUsageMask, 0x42002c);
  t.equal(Tag.X_509CertificateIdentifier, 0x4200b5);
  t.equal(Tag.IVCounterNonce, 0x42003d);
  t.equal(Tag.PKCS_11Function, 0x42015a);
  t.equal(Tag.AsynchronousCorrelationValues, 0x420176);
  t.equal(tagInfo(0x42002c)?.specName, 'Cryptographic Usage Mask');
  t.equal(tagByName('Cryptographic Usage Mask')?.tag, 0x42002c);
  t.equal(tagByName('CryptographicUsageMask')?.tag, 0x42002c);
  t.equal(tagByName('x'), undefined);
  t.equal(tagName(0x420057), 'ObjectType');
  t.equal(tagName(0x540001), '0x540001');
  t.equal(tagName(0x420137), '0x420137', '"Reserved" in the 2.0/2.1 tables is not a tag');
  t.end();
});

t.test('tag version ranges', (t) => {
  t.ok(tagInVersion(Tag.TemplateAttribute, '1.4'));
  t.notOk(tagInVersion(Tag.TemplateAttribute, '2.0'), 'Template-Attribute is (Reserved) in 2.0');
  t.notOk(tagInVersion(Tag.Attributes, '1.4'));
  t.ok(tagInVersion(Tag.Attributes, '2.0'));
  t.notOk(tagInVersion(Tag.RotateName, '2.0'));
  t.ok(tagInVersion(Tag.RotateName, '2.1'));
  t.notOk(tagInVersion(Tag.DeviceIdentifier, '1.0'));
  t.ok(tagInVersion(Tag.DeviceIdentifier, '1.1'));
  t.ok(tagInVersion(0x540123, '1.0'), 'extension tags are valid in every version');
  t.notOk(tagInVersion(0x42ffff, '2.1'));
  t.end();
});

t.test('enumerations', (t) => {
  t.equal(Enums.ObjectType.SymmetricKey, 2);
  t.equal(Enums.CryptographicAlgorithm.DES3, 2);
  t.equal(enumInfo('Object Type')?.name, 'ObjectType');
  t.equal(enumForTag(Tag.ObjectType)?.name, 'ObjectType');
  t.equal(enumForTag(Tag.MaskGeneratorHashingAlgorithm)?.name, 'HashingAlgorithm');
  t.equal(enumForTag(Tag.AttributeReference)?.name, 'Tag');
  t.equal(enumForTag(Tag.Name), undefined);
  t.equal(enumValueName('ObjectType', 2), 'SymmetricKey');
  t.equal(enumValueName('Object Type', 2), 'SymmetricKey', 'enumeration by spec name');
  t.equal(enumValueName('ObjectType', 0x55), undefined);
  t.equal(enumValueName('Tag', 0x42002c), 'CryptographicUsageMask');
  t.equal(enumValueByName('ObjectType', 'SymmetricKey'), 2);
  t.equal(enumValueByName('ObjectType', 'Symmetric Key'), 2);
  t.equal(enumValueByName('CryptographicAlgorithm', '3DES'), 2);
  t.equal(enumValueByName('HashingAlgorithm', 'SHA-3-256'), 0xf, '1.4 spelling');
  t.equal(enumValueByName('HashingAlgorithm', 'SHA3_256'), 0xf);
  t.equal(enumValueByName('MaskGenerator', 'MFG1'), 1, '2.x table typo accepted');
  t.equal(enumValueName('MaskGenerator', 1), 'MGF1', 'corpus name wins');
  t.equal(enumValueByName('DigitalSignatureAlgorithm', 'SHA_256WithRSAEncryption'), 5);
  t.equal(enumValueByName('DigitalSignatureAlgorithm', 'SHA-256 with RSA Encryption (PKCS#1 v1.5)'), 5);
  t.equal(enumValueByName('ResultReason', 'NotAuthorized'), 0x39);
  t.equal(enumValueByName('ResultReason', 'NotAuthorised'), 0x39);
  t.equal(enumValueByName('PKCS_11ReturnCode', 'OK'), 0);
  t.equal(enumValueByName('PKCS_11Function', 'C_Initialize'), 1);
  t.equal(enumValueByName('ObjectType', 'Nope'), undefined);
  t.end();
});

t.test('enumeration version ranges', (t) => {
  t.ok(enumValueInVersion('ObjectType', 6, '1.4'), 'Template in 1.4');
  t.notOk(enumValueInVersion('ObjectType', 6, '2.0'), 'Template reserved in 2.0');
  t.notOk(enumValueInVersion('ObjectType', 0xa, '1.4'));
  t.ok(enumValueInVersion('ObjectType', 0xa, '2.0'));
  t.notOk(enumValueInVersion('Operation', 0x3b, '2.0'), 'Ping is 2.1');
  t.ok(enumValueInVersion('Operation', 0x3b, '2.1'));
  t.ok(enumValueInVersion('Operation', 0x8000_0001, '1.0'), 'extension value');
  t.notOk(enumValueInVersion('ProcessingStage', 1, '2.0'), 'enumeration itself is 2.1');
  t.notOk(enumValueInVersion('Nope', 1, '2.0'));
  t.end();
});

t.test('masks', (t) => {
  t.equal(Masks.CryptographicUsageMask.Sign, 1);
  t.equal(maskForTag(Tag.CryptographicUsageMask)?.name, 'CryptographicUsageMask');
  t.equal(maskForTag(Tag.ObjectType), undefined);
  t.same(maskNames('CryptographicUsageMask', 0x0c), ['Encrypt', 'Decrypt']);
  t.same(maskNames('CryptographicUsageMask', 0), []);
  t.equal(maskNames('CryptographicUsageMask', 0x0100_0000), undefined, 'unnamed bit');
  t.equal(maskNames('Nope', 1), undefined);
  t.same(maskNames('StorageStatusMask', 3), ['OnLineStorage', 'ArchivalStorage']);
  t.equal(maskValue('CryptographicUsageMask', ['Encrypt', 'Decrypt']), 0x0c);
  t.equal(maskValue('CryptographicUsageMask', ['Content Commitment (Non Repudiation)']), 0x400);
  t.equal(maskValue('CryptographicUsageMask', ['ContentCommitment']), 0x400);
  t.equal(maskValue('CryptographicUsageMask', ['Bogus']), undefined);
  t.equal(maskValue('CryptographicUsageMask', []), 0);
  t.end();
});

t.test('versions', (t) => {
  t.ok(compareVersions('1.0', '2.1') < 0);
  t.equal(compareVersions('1.4', '1.4'), 0);
  t.ok(compareVersions('2.0', '1.4') > 0);
  t.equal(parseVersion(1, 4), '1.4');
  t.equal(parseVersion(2, 1), '2.1');
  t.equal(parseVersion(3, 0), undefined);
  t.equal(parseVersion(1, 5), undefined);
  t.end();
});

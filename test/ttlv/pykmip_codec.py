#!/usr/bin/python3
"""
PyKMIP side of the kmipd codec interop test (test/ttlv/pykmip-interop.test.ts).

Uses PyKMIP's own message classes and encoder (python3-pykmip 0.10, run with /usr/bin/python3):

  pykmip_codec.py encode   prints a JSON array of {name, version, hex, expect}: messages built
                           with PyKMIP's classes for KMIP 1.0-1.4 and 2.0, encoded by PyKMIP, with
                           a summary of the fields PyKMIP put in them.
  pykmip_codec.py decode   reads hex messages on stdin, one a line, decodes each with PyKMIP's
                           RequestMessage/ResponseMessage and prints one JSON line per message:
                           the same summary, or {"error": "..."}.

The summary (see summarize()) is the shape the TypeScript test computes from its own TTLV tree.
"""
import binascii
import enum
import json
import sys

from kmip.core import enums
from kmip.core import attributes as cattr
from kmip.core import misc
from kmip.core import objects
from kmip.core import primitives
from kmip.core import secrets
from kmip.core.factories.attributes import AttributeFactory
from kmip.core.messages import contents
from kmip.core.messages import messages
from kmip.core.messages import payloads
from kmip.core.utils import BytearrayStream

VERSIONS = [
    ('1.0', enums.KMIPVersion.KMIP_1_0, (1, 0)),
    ('1.1', enums.KMIPVersion.KMIP_1_1, (1, 1)),
    ('1.2', enums.KMIPVersion.KMIP_1_2, (1, 2)),
    ('1.3', enums.KMIPVersion.KMIP_1_3, (1, 3)),
    ('1.4', enums.KMIPVersion.KMIP_1_4, (1, 4)),
    ('2.0', enums.KMIPVersion.KMIP_2_0, (2, 0)),
]

UID = '1f165d65-cbbd-4bd6-9867-80e0b390acf9'
UID2 = 'b4faee10-aa2a-4446-8ad4-0881f3422959'
KEY32 = bytes(range(0x10, 0x30))
TIME_STAMP = 1335514341
F = AttributeFactory()


# ---------------------------------------------------------------------------------------------
# Building messages


def request(version, items):
    header = messages.RequestHeader(
        protocol_version=contents.ProtocolVersion(*version),
        batch_count=contents.BatchCount(len(items)),
    )
    batch = []
    for op, payload, batch_id in items:
        batch.append(messages.RequestBatchItem(
            operation=contents.Operation(op),
            unique_batch_item_id=contents.UniqueBatchItemID(batch_id) if batch_id is not None else None,
            request_payload=payload,
        ))
    return messages.RequestMessage(request_header=header, batch_items=batch)


def response(version, items):
    header = messages.ResponseHeader(
        protocol_version=contents.ProtocolVersion(*version),
        time_stamp=contents.TimeStamp(TIME_STAMP),
        batch_count=contents.BatchCount(len(items)),
    )
    batch = []
    for op, payload, batch_id, status, reason, message in items:
        batch.append(messages.ResponseBatchItem(
            operation=contents.Operation(op),
            unique_batch_item_id=contents.UniqueBatchItemID(batch_id) if batch_id is not None else None,
            result_status=contents.ResultStatus(status),
            result_reason=contents.ResultReason(reason) if reason is not None else None,
            result_message=contents.ResultMessage(message) if message is not None else None,
            response_payload=payload,
        ))
    return messages.ResponseMessage(response_header=header, batch_items=batch)


def ok(op, payload, batch_id=None):
    return (op, payload, batch_id, enums.ResultStatus.SUCCESS, None, None)


def key_attributes(algorithm, length, mask, name):
    return [
        F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, algorithm),
        F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, length),
        F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, mask),
        F.create_attribute(enums.AttributeType.NAME, name),
    ]


def symmetric_key(material, length):
    return secrets.SymmetricKey(objects.KeyBlock(
        key_format_type=misc.KeyFormatType(enums.KeyFormatType.RAW),
        key_value=objects.KeyValue(objects.KeyMaterial(material)),
        cryptographic_algorithm=cattr.CryptographicAlgorithm(enums.CryptographicAlgorithm.AES),
        cryptographic_length=cattr.CryptographicLength(length),
    ))


def build_all(version):
    """Fresh objects for each version: PyKMIP's 2.0 attribute conversion re-tags values in place."""
    O = enums.Operation
    masks = [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]
    out = []

    out.append(('create', request(version, [(O.CREATE, payloads.CreateRequestPayload(
        object_type=enums.ObjectType.SYMMETRIC_KEY,
        template_attribute=objects.TemplateAttribute(attributes=key_attributes(
            enums.CryptographicAlgorithm.AES, 128, masks, 'kmipd-interop-key')),
    ), None)])))

    out.append(('get-request', request(version, [(O.GET, payloads.GetRequestPayload(
        unique_identifier=UID, key_format_type=enums.KeyFormatType.RAW), None)])))

    out.append(('get-response', response(version, [ok(O.GET, payloads.GetResponsePayload(
        object_type=enums.ObjectType.SYMMETRIC_KEY, unique_identifier=UID,
        secret=symmetric_key(KEY32, 256)))])))

    out.append(('locate-request', request(version, [(O.LOCATE, payloads.LocateRequestPayload(
        maximum_items=10,
        attributes=[
            F.create_attribute(enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY),
            F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES),
            F.create_attribute(enums.AttributeType.NAME, 'kmipd-interop-key'),
        ]), None)])))

    out.append(('locate-response', response(version, [ok(O.LOCATE, payloads.LocateResponsePayload(
        unique_identifiers=[UID, UID2, 'third']))])))

    out.append(('register', request(version, [(O.REGISTER, payloads.RegisterRequestPayload(
        object_type=enums.ObjectType.SYMMETRIC_KEY,
        template_attribute=objects.TemplateAttribute(attributes=[
            F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, masks),
            F.create_attribute(enums.AttributeType.NAME, 'registered-key'),
        ]),
        managed_object=symmetric_key(KEY32[:16], 128)), None)])))

    out.append(('get-attributes', request(version, [(O.GET_ATTRIBUTES, payloads.GetAttributesRequestPayload(
        unique_identifier=UID,
        attribute_names=['Cryptographic Algorithm', 'Cryptographic Length', 'State']), None)])))

    out.append(('activate', request(version, [(O.ACTIVATE, payloads.ActivateRequestPayload(
        unique_identifier=cattr.UniqueIdentifier(UID)), None)])))

    out.append(('revoke', request(version, [(O.REVOKE, payloads.RevokeRequestPayload(
        unique_identifier=cattr.UniqueIdentifier(UID),
        revocation_reason=objects.RevocationReason(
            code=enums.RevocationReasonCode.CESSATION_OF_OPERATION, message='retired by interop test')),
        None)])))

    out.append(('destroy', request(version, [(O.DESTROY, payloads.DestroyRequestPayload(
        unique_identifier=cattr.UniqueIdentifier(UID)), None)])))

    out.append(('query', request(version, [(O.QUERY, payloads.QueryRequestPayload(query_functions=[
        enums.QueryFunction.QUERY_OPERATIONS, enums.QueryFunction.QUERY_OBJECTS,
        enums.QueryFunction.QUERY_SERVER_INFORMATION]), None)])))

    out.append(('discover-versions', request(version, [(O.DISCOVER_VERSIONS, payloads.DiscoverVersionsRequestPayload(
        protocol_versions=[contents.ProtocolVersion(2, 0), contents.ProtocolVersion(1, 4),
                           contents.ProtocolVersion(1, 2)]), None)])))

    out.append(('discover-versions-response', response(version, [ok(
        O.DISCOVER_VERSIONS, payloads.DiscoverVersionsResponsePayload(
            protocol_versions=[contents.ProtocolVersion(1, 4), contents.ProtocolVersion(1, 0)]))])))

    out.append(('batch', request(version, [
        (O.ACTIVATE, payloads.ActivateRequestPayload(unique_identifier=cattr.UniqueIdentifier(UID)), b'\x01'),
        (O.GET, payloads.GetRequestPayload(unique_identifier=UID), b'\x02'),
        (O.REVOKE, payloads.RevokeRequestPayload(
            unique_identifier=cattr.UniqueIdentifier(UID2),
            revocation_reason=objects.RevocationReason(code=enums.RevocationReasonCode.KEY_COMPROMISE)),
         b'\x00\x03'),
        (O.DESTROY, payloads.DestroyRequestPayload(unique_identifier=cattr.UniqueIdentifier(UID2)),
         b'batch-item-4'),
    ])))

    out.append(('batch-response', response(version, [
        ok(O.ACTIVATE, payloads.ActivateResponsePayload(unique_identifier=cattr.UniqueIdentifier(UID)), b'\x01'),
        (O.DESTROY, None, b'\x02', enums.ResultStatus.OPERATION_FAILED,
         enums.ResultReason.ITEM_NOT_FOUND, 'no such object'),
    ])))
    return out


# ---------------------------------------------------------------------------------------------
# Summaries: the fields both sides compare


def val(x):
    """A PyKMIP field may be a plain value, an enum, a primitive wrapper or a nested wrapper."""
    while hasattr(x, 'value') and not isinstance(x, (enum.Enum, bytes, str, int)):
        x = x.value
    if isinstance(x, enum.Enum):
        x = x.value
    return x


def attr_value(name, v):
    if name == 'Name':
        return val(v.name_value)
    if name == 'Cryptographic Usage Mask':
        # PyKMIP keeps the mask as an Integer; 2.0 conversion may leave a list of enums.
        m = val(v)
        if isinstance(m, list):
            m = sum(val(e) for e in m)
        return m
    return val(v)


def attr_pairs(attrs):
    return [[val(a.attribute_name), attr_value(val(a.attribute_name), a.attribute_value)] for a in attrs]


def payload_summary(p):
    s = {}
    if p is None:
        return None
    if getattr(p, 'object_type', None) is not None:
        s['objectType'] = val(p.object_type)
    uid = getattr(p, 'unique_identifier', None)
    if uid is not None:
        s['uid'] = val(uid)
    ta = getattr(p, 'template_attribute', None)
    if ta is not None:
        s['attributes'] = attr_pairs(ta.attributes)
    if isinstance(p, payloads.LocateRequestPayload):
        if p.maximum_items is not None:
            s['maximumItems'] = p.maximum_items
        if p.attributes:
            s['attributes'] = attr_pairs(p.attributes)
    if isinstance(p, payloads.LocateResponsePayload):
        s['uids'] = list(p.unique_identifiers)
    if isinstance(p, payloads.GetAttributesRequestPayload):
        s['attributeNames'] = list(p.attribute_names)
    if isinstance(p, payloads.GetRequestPayload) and p.key_format_type is not None:
        s['keyFormatType'] = val(p.key_format_type)
    secret = getattr(p, 'secret', None) or getattr(p, 'managed_object', None)
    if secret is not None:
        kb = secret.key_block
        s['keyFormatType'] = val(kb.key_format_type)
        s['keyMaterial'] = binascii.hexlify(val(kb.key_value.key_material)).decode()
        s['cryptographicAlgorithm'] = val(kb.cryptographic_algorithm)
        s['cryptographicLength'] = val(kb.cryptographic_length)
    rr = getattr(p, 'revocation_reason', None)
    if rr is not None:
        s['revocationReason'] = val(rr.revocation_code)
        if rr.revocation_message is not None:
            s['revocationMessage'] = val(rr.revocation_message)
    if isinstance(p, payloads.QueryRequestPayload):
        s['queryFunctions'] = [val(q) for q in p.query_functions]
    if isinstance(p, (payloads.DiscoverVersionsRequestPayload, payloads.DiscoverVersionsResponsePayload)):
        s['protocolVersions'] = [[v.major, v.minor] for v in p.protocol_versions]
    return s


def summarize(msg):
    is_request = isinstance(msg, messages.RequestMessage)
    header = msg.request_header if is_request else msg.response_header
    pv = header.protocol_version
    out = {
        'message': 'request' if is_request else 'response',
        'version': [pv.major, pv.minor],
        'batchCount': val(header.batch_count),
        'items': [],
    }
    if not is_request:
        out['timeStamp'] = val(header.time_stamp)
    for bi in msg.batch_items:
        item = {'operation': val(bi.operation)}
        if bi.unique_batch_item_id is not None:
            item['batchId'] = binascii.hexlify(val(bi.unique_batch_item_id)).decode()
        if is_request:
            item['payload'] = payload_summary(bi.request_payload)
        else:
            item['status'] = val(bi.result_status)
            if bi.result_reason is not None:
                item['reason'] = val(bi.result_reason)
            if bi.result_message is not None:
                item['resultMessage'] = val(bi.result_message)
            item['payload'] = payload_summary(bi.response_payload)
        out['items'].append(item)
    return out


# ---------------------------------------------------------------------------------------------


def encode():
    result = []
    for label, kmip_version, version in VERSIONS:
        for name, msg in build_all(version):
            expect = summarize(msg)  # before writing: the objects as built
            stream = BytearrayStream()
            msg.write(stream, kmip_version=kmip_version)
            result.append({
                'name': name,
                'version': label,
                'hex': binascii.hexlify(stream.buffer).decode().upper(),
                'expect': expect,
            })
    json.dump(result, sys.stdout)
    sys.stdout.write('\n')


def decode():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            data = binascii.unhexlify(line)
            stream = BytearrayStream(data)
            # Request Message 0x420078, Response Message 0x42007B
            msg = messages.RequestMessage() if data[:3] == b'\x42\x00\x78' else messages.ResponseMessage()
            # PyKMIP switches to the version named in the header after reading it.
            msg.read(stream, kmip_version=enums.KMIPVersion.KMIP_1_0)
            if stream.length() != 0:
                raise ValueError('%d bytes left after the message' % stream.length())
            print(json.dumps(summarize(msg)))
        except Exception as e:  # reported to the test, which fails on it
            print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}))
        sys.stdout.flush()


if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in ('encode', 'decode'):
        sys.stderr.write('usage: pykmip_codec.py encode|decode\n')
        sys.exit(2)
    encode() if sys.argv[1] == 'encode' else decode()

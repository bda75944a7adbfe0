"""Drives kmipd with the PyKMIP client (Debian python3-pykmip), for the interop tests.

Usage: /usr/bin/python3 pykmip_client.py SCENARIO CONFIG_JSON
CONFIG_JSON: {"port": N, "cert": path, "key": path, "ca": path, "version": "1.2", ...}
Prints one JSON object with what each step observed; the TypeScript test asserts on it.
Failures of individual steps are recorded, never raised, so the test sees all of them.
"""
import json
import logging
import sys
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

from kmip.core import enums  # noqa: E402
from kmip.core import objects as cobjects  # noqa: E402
from kmip.pie import client as pclient  # noqa: E402
from kmip.pie import objects  # noqa: E402

VERSIONS = {
    "1.0": enums.KMIPVersion.KMIP_1_0,
    "1.1": enums.KMIPVersion.KMIP_1_1,
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.3": enums.KMIPVersion.KMIP_1_3,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}


def connect(cfg, cert_key="cert", key_key="key"):
    c = pclient.ProxyKmipClient(
        hostname="127.0.0.1",
        port=cfg["port"],
        cert=cfg[cert_key],
        key=cfg[key_key],
        ca=cfg["ca"],
        config_file="/dev/null",
        kmip_version=VERSIONS[cfg["version"]],
    )
    c.open()
    return c


def step(out, name, fn):
    try:
        out[name] = {"ok": True, "value": fn()}
    except Exception as e:  # record, never raise: the test reports every step
        out[name] = {"ok": False, "error": type(e).__name__, "message": str(e)[:300]}


def attr_value(a):
    v = a.attribute_value
    if hasattr(v, "value"):
        v = v.value
    if hasattr(v, "name_value"):
        v = v.name_value.value
    if isinstance(v, enums.enum.Enum):
        v = v.name
    if isinstance(v, bytes):
        v = v.hex()
    if not isinstance(v, (str, int, float, bool, type(None))):
        v = str(v)
    return v


def lifecycle(cfg):
    out = {}
    c = connect(cfg)
    name = cfg.get("name", "interop-key")
    step(out, "discover_versions", lambda: [str(v) for v in c.proxy.discover_versions().protocol_versions])
    step(out, "query", lambda: {
        "vendor": c.proxy.query(query_functions=[enums.QueryFunction.QUERY_SERVER_INFORMATION]).vendor_identification,
        "operations": [o.name for o in c.proxy.query(query_functions=[enums.QueryFunction.QUERY_OPERATIONS]).operations],
    })
    step(out, "create", lambda: c.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                                          cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                                    enums.CryptographicUsageMask.DECRYPT]))
    uid = out["create"].get("value")
    step(out, "get", lambda: {"alg": c.get(uid).cryptographic_algorithm.name, "len": c.get(uid).cryptographic_length,
                              "bytes": len(c.get(uid).value)})
    step(out, "get_attributes", lambda: {a.attribute_name.value: attr_value(a) for a in c.get_attributes(uid)[1]})
    step(out, "get_attribute_list", lambda: sorted(c.get_attribute_list(uid)))
    step(out, "activate", lambda: c.activate(uid))
    step(out, "state_after_activate", lambda: attr_value(c.get_attributes(uid, ["State"])[1][0]))
    step(out, "locate_by_name", lambda: c.locate(attributes=[
        cobjects.Attribute(attribute_name=cobjects.Attribute.AttributeName("Name"),
                           attribute_value=__import__("kmip.core.attributes", fromlist=["Name"]).Name.create(
                               name, enums.NameType.UNINTERPRETED_TEXT_STRING))]))
    step(out, "destroy_active", lambda: c.destroy(uid))
    step(out, "revoke", lambda: c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid))
    step(out, "destroy", lambda: c.destroy(uid))
    key = bytes(range(32))
    step(out, "register", lambda: c.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, key)))
    ruid = out["register"].get("value")
    step(out, "get_registered", lambda: c.get(ruid).value.hex())
    step(out, "batch", lambda: batch(c, ruid, cfg["version"]))
    c.close()
    return out


def batch(c, uid, version):
    p = c.proxy
    # Discover Versions exists from KMIP 1.1 on; a 1.0 batch asks Query twice instead.
    first = (p._build_query_batch_item([enums.QueryFunction.QUERY_OPERATIONS]) if version == "1.0"
             else p._build_discover_versions_batch_item(None))
    items = [
        first,
        p._build_get_attributes_batch_item(uid, ["State", "Cryptographic Length"]),
        p._build_get_attribute_list_batch_item(uid),
        p._build_query_batch_item([enums.QueryFunction.QUERY_SERVER_INFORMATION]),
    ]
    msg = p._build_request_message(None, items)
    resp = p._send_and_receive_message(msg)
    return [
        {"op": i.operation.value.name if i.operation else None, "status": i.result_status.value.name}
        for i in resp.batch_items
    ]


def isolation(cfg):
    out = {}
    a = connect(cfg)
    b = connect(cfg, "cert_b", "key_b")
    step(out, "create_a", lambda: a.create(enums.CryptographicAlgorithm.AES, 128, name="alice-only"))
    uid = out["create_a"].get("value")
    step(out, "get_b", lambda: b.get(uid).value.hex())
    step(out, "attrs_b", lambda: len(b.get_attributes(uid)[1]))
    step(out, "destroy_b", lambda: b.destroy(uid))
    step(out, "locate_b", lambda: b.locate())
    step(out, "locate_a", lambda: uid in a.locate())
    a.close()
    b.close()
    return out


if __name__ == "__main__":
    scenario, cfg = sys.argv[1], json.loads(sys.argv[2])
    result = {"lifecycle": lifecycle, "isolation": isolation}[scenario](cfg)
    print(json.dumps(result))

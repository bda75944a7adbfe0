#!/usr/bin/python3
"""Dump PyKMIP's tag and enumeration numbers as JSON, for test/spec/pykmip.test.ts.

Output: {"version": "...", "enums": {"ClassName": {"MEMBER": number, ...}, ...}}
Every enum.Enum subclass defined in kmip.core.enums is included; "Tags" holds the tags.
"""
import enum
import json
import sys

import kmip
from kmip.core import enums as pyk_enums

out = {}
for name in dir(pyk_enums):
    cls = getattr(pyk_enums, name)
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)) or cls.__module__ != pyk_enums.__name__:
        continue
    members = {}
    for member_name, member in cls.__members__.items():
        if isinstance(member.value, int) and not isinstance(member.value, bool):
            members[member_name] = member.value
    if members:
        out[name] = members

json.dump({"version": getattr(kmip, "__version__", "unknown"), "enums": out}, sys.stdout, sort_keys=True)

"""What a MAAS system_id looks like, for the ones that arrive from outside (`System_Id`).

MAAS names each node with six characters drawn at random from a 24-letter alphabet without
look-alikes (`34678abcdefghkmnpqrstwxy`: `generate_node_system_id` in MAAS's
`src/maasserver/models/node.py`, `znums.py` in provisioningserver/utils), e.g. "4y3ha3"; nodes
enlisted before MAAS 2.0 may still carry a `node-<uuid>` id. A value of another shape in a
`System_Id` header did not come from MAAS, and it must never reach a power command's argv
(`-oProxyCommand=...` would be an option there). `is_system_id` accepts six lowercase
letters or digits, a superset of MAAS's alphabet that still excludes everything an argv or
a path could misread, or the legacy form. It only checks shapes; `power_api` decides what a
malformed header means (400).
"""

from __future__ import annotations

import re

SHAPE = "six lowercase letters or digits, e.g. 4y3ha3"
_SYSTEM_ID = re.compile(r"[0-9a-z]{6}|node-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def is_system_id(value: str) -> bool:
    """True when `value` has the shape of a MAAS system_id (see the module docstring)."""
    return _SYSTEM_ID.fullmatch(value) is not None

"""Run `POWER_HELPER_SCRIPT` for a New machine that has no power type, read its answer.

maas-flow's (opencord) power helper: an operator-provided program that knows how to reach
a machine's BMC from its MAC addresses. It is run as `<script> <mac> [<mac> ...]` (argv,
never a shell) and must print one JSON object on stdout, either

    {"power_type": "amt", "power_parameters": {"power_address": "10.0.0.5", ...}}

or opencord's flat form `{"name": "amt", "power_address": ..., ...}`, where every key
but `name` is a power parameter. The result is the PUT fields for `machines/<id>/`
(`power_type=...`, `power_parameters_<key>=...`). It stops at parsing: the daemon sends
the PUT.

It runs through the one child runner (`common.child`): its own process group, SIGTERM then
SIGKILL at the timeout, no secret in its environment, stdout (the answer, at most 64 KiB)
kept apart from stderr (the evidence when it fails). A background child it leaves holding
stdout delays the answer by the runner's short drain, never loses it.
"""

from __future__ import annotations

import json
from typing import Any

from maasflow.common import child
from maasflow.common.errors import MaasflowError

TIMEOUT_S = 60.0
_MAX_OUTPUT = 64 * 1024


class PowerHelperError(MaasflowError):
    """The helper failed, hung or printed something that is not a power configuration."""


async def run_power_helper(
    script: str, macs: list[str], timeout: float = TIMEOUT_S
) -> dict[str, str]:
    """Run the helper with the MACs as arguments; return the PUT fields it describes."""
    limits = child.Limits(timeout=timeout, tail_bytes=_MAX_OUTPUT)
    try:
        done = await child.run([script, *macs], limits=limits, streams=child.Streams.SEPARATE)
    except child.ChildError as exc:
        raise PowerHelperError(f"power helper {exc}") from None
    return power_fields(done.output)


def power_fields(text: str) -> dict[str, str]:
    """Turn the helper's JSON answer into `machines/<id>/` PUT fields."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PowerHelperError(f"power helper printed invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PowerHelperError("power helper must print a JSON object")
    if "power_type" in data:
        power_type, params = data["power_type"], data.get("power_parameters") or {}
    else:
        power_type = data.get("name")
        params = {k: v for k, v in data.items() if k != "name"}
    if not isinstance(power_type, str) or not power_type or not isinstance(params, dict):
        raise PowerHelperError("power helper JSON needs a power_type (or name) string")
    fields = {"power_type": power_type}
    fields.update({f"power_parameters_{k}": _text(v) for k, v in params.items()})
    return fields


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)

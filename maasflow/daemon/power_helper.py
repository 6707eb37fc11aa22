"""Run `POWER_HELPER_SCRIPT` for a New machine that has no power type, read its answer.

maas-flow's (opencord) power helper: an operator-provided program that knows how to reach
a machine's BMC from its MAC addresses. It is run as `<script> [<arg> ...] <mac> [<mac> ...]`
(argv, never a shell), the leading arguments being what the settings give
(`Settings.power_helper_args`: maas-flow's `USER HOST`, or none), and must print one JSON
object on stdout, either

    {"power_type": "amt", "power_parameters": {"power_address": "10.0.0.5", ...}}

(MAAS's own parameter names, sent as they are) or opencord's flat form
`{"name": "amt", "mac_address": ..., "power_password": ..., "power_address": ...}`, where
every key but `name` is a power parameter. The flat form is maas-flow's `Power` struct,
which maas-flow translated for MAAS; so does this module, for MAAS as it runs today: MAAS
refuses a PUT naming a parameter its driver lacks ("Unknown parameter(s): ..."), so
`power_password` becomes `power_pass` (no MAAS driver has a `power_password`; amt, ipmi,
virsh, webhook... call it `power_pass`), and for amt `mac_address` is dropped (MAAS 1.x's amt
had it, today's amt has only power_user, power_pass, power_address and port; ipmi's
`mac_address` is kept). The result is the PUT fields for `machines/<id>/` (`power_type=...`,
`power_parameters_<key>=...`). It stops at parsing: the daemon sends the PUT.

It runs through the one child runner (`common.child`): its own process group, SIGTERM then
SIGKILL at the timeout, no secret in its environment, stdout (the answer, at most 64 KiB)
kept apart from stderr (the evidence when it fails). A background child it leaves holding
stdout delays the answer by the runner's short drain, never loses it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from maasflow.common import child
from maasflow.common.errors import MaasflowError

TIMEOUT_S = 60.0
_MAX_OUTPUT = 64 * 1024
FLAT_FORM_RENAMES = {"power_password": "power_pass"}  # opencord's name -> MAAS's
FLAT_FORM_DROPPED = {"amt": frozenset({"mac_address"})}  # MAAS 1.x parameters gone today


class PowerHelperError(MaasflowError):
    """The helper failed, hung or printed something that is not a power configuration."""


async def run_power_helper(
    script: str, macs: list[str], timeout: float = TIMEOUT_S, *, args: Sequence[str] = ()
) -> dict[str, str]:
    """Run `script *args *macs`; return the PUT fields its answer describes."""
    limits = child.Limits(timeout=timeout, tail_bytes=_MAX_OUTPUT)
    argv = [script, *args, *macs]
    try:
        done = await child.run(argv, limits=limits, streams=child.Streams.SEPARATE)
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
        params = _flat_params(data, FLAT_FORM_DROPPED.get(str(power_type), frozenset()))
    if not isinstance(power_type, str) or not power_type or not isinstance(params, dict):
        raise PowerHelperError("power helper JSON needs a power_type (or name) string")
    fields = {"power_type": power_type}
    fields.update({f"power_parameters_{k}": _text(v) for k, v in params.items()})
    return fields


def _flat_params(data: dict[str, Any], dropped: frozenset[str]) -> dict[str, Any]:
    """The flat form's parameters under MAAS's names, those MAAS no longer has left out."""
    skip = {"name", *dropped}
    return {FLAT_FORM_RENAMES.get(k, k): v for k, v in data.items() if k not in skip}


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)

"""Run `POWER_HELPER_SCRIPT` for a New machine that has no power type, read its answer.

maas-flow's (opencord) power helper: an operator-provided program that knows how to reach
a machine's BMC from its MAC addresses. It is run as `<script> <mac> [<mac> ...]` (argv,
never a shell) and must print one JSON object on stdout, either

    {"power_type": "amt", "power_parameters": {"power_address": "10.0.0.5", ...}}

or opencord's flat form `{"name": "amt", "power_address": ..., ...}`, where every key
but `name` is a power parameter. The result is the PUT fields for `machines/<id>/`
(`power_type=...`, `power_parameters_<key>=...`). It stops at parsing: the daemon sends
the PUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from maasflow.common.errors import MaasflowError
from maasflow.daemon.provisioning import safe_environ

TIMEOUT_S = 60.0
_MAX_OUTPUT = 64 * 1024


class PowerHelperError(MaasflowError):
    """The helper failed, hung or printed something that is not a power configuration."""


async def run_power_helper(
    script: str, macs: list[str], timeout: float = TIMEOUT_S
) -> dict[str, str]:
    """Run the helper with the MACs as arguments; return the PUT fields it describes."""
    proc = await asyncio.create_subprocess_exec(
        script,
        *macs,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=safe_environ(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        _kill_group(proc.pid)
        await proc.wait()
        raise PowerHelperError(f"power helper {script} timed out after {timeout:g}s") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-300:].strip()
        raise PowerHelperError(f"power helper {script} exited {proc.returncode}: {tail}")
    return power_fields(out[:_MAX_OUTPUT].decode(errors="replace"))


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


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)

"""Command backend: run a program to switch a machine, and another to read its state.

Templates are argv lists from the power config; `{system_id}`, `{mac}`, `{hostname}` and
`{name}` are substituted inside each argument separately and the result is executed directly,
never through a shell, so a value such as `a;rm -rf x` arrives as one literal argument, and
a value starting with `-` is refused (400) rather than read as an option. `{system_id}` and
`{mac}` are the configured ones: MAAS 3.5+ sends no `System_Id` with on/off (and never a
MAC), so the config refuses a template that uses one the machine lacks
(`power_config.CommandMachine`); `{hostname}` defaults to the name.
Each run has a timeout after which its whole process group is killed. The status program's
stdout is searched with `on_regex`, then `off_regex`; neither matching means "unknown".
Without a status template the state is the last one a successful on/off recorded.
With one, on/off are idempotent: the status is read first and a machine already in the
wanted state is left alone, and a program that exits non-zero is forgiven when the status
then reads the wanted state (as `virsh start` on a running domain does).

Programs run through the one child runner (`common.child`): their own process group, output
merged and bounded to its last 64 KiB, and an environment without the service's secrets
(`secrets.scrubbed_environ`, plus the power config's `password_env` names). A program that
exits leaving a background child on its output is answered after a short drain.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection

import structlog

from maasflow.common import child
from maasflow.common.secrets import scrubbed_environ
from maasflow.serve.backends import (
    BackendUnavailable,
    PowerError,
    PowerState,
    Target,
    UnsafeArgument,
)
from maasflow.serve.power_config import CommandMachine
from maasflow.serve.power_state import PowerStateStore

log = structlog.get_logger(__name__)

_PLACEHOLDER = re.compile(r"\{(system_id|mac|hostname|name)\}")


def render(template: list[str], target: Target) -> list[str]:
    """Substitute the placeholders of each argument; values are inserted literally.

    A value starting with "-" is refused (`UnsafeArgument`, 400) wherever it would go: as an
    argument of its own, `-oProxyCommand=...` is an option to ssh and friends.
    """
    values = {
        "system_id": target.system_id,
        "mac": target.mac or "",
        "hostname": target.hostname,
        "name": target.name,
    }

    def fill(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        if value.startswith("-"):
            raise UnsafeArgument(
                f"refusing to run {template[0]!r}: {{{match.group(1)}}} would be "
                f"{value[:40]!r}, which starts with '-' and would be read as an option"
            )
        return value

    return [_PLACEHOLDER.sub(fill, arg) for arg in template]


async def run(argv: list[str], timeout: float, hidden_env: Collection[str] = ()) -> str:
    """Run argv to completion; its output, or PowerError with the exit code and output tail.

    The child's environment lacks the service's secrets and the `hidden_env` names."""
    limits = child.Limits(timeout=timeout)
    try:
        done = await child.run(argv, limits=limits, env=scrubbed_environ(hidden_env))
    except child.StartError as exc:
        raise BackendUnavailable(f"cannot run {argv[0]!r}: {exc.cause}") from None
    except child.TimedOut:
        raise PowerError(f"{argv[0]!r} did not finish within {timeout:g} s") from None
    except child.ChildError as exc:
        raise PowerError(str(exc)) from None
    return done.output


class CommandBackend:
    """One machine switched by configured programs."""

    def __init__(
        self, spec: CommandMachine, store: PowerStateStore, hidden_env: Collection[str] = ()
    ) -> None:
        self._spec = spec
        self._store = store
        self._hidden_env = frozenset(hidden_env)
        self._on = re.compile(spec.on_regex)
        self._off = re.compile(spec.off_regex)
        self._lock = asyncio.Lock()

    async def power_on(self, target: Target) -> PowerState:
        return await self._act(target, self._spec.on, "on")

    async def power_off(self, target: Target) -> PowerState:
        return await self._act(target, self._spec.off, "off")

    async def query(self, target: Target) -> PowerState:
        if self._spec.status is None:
            return self._store.get(target.name)
        out = await run(render(self._spec.status, target), self._spec.timeout, self._hidden_env)
        state: PowerState = (
            "on" if self._on.search(out) else "off" if self._off.search(out) else "unknown"
        )
        if state != "unknown":
            self._store.set(target.name, state)
        return state

    async def aclose(self) -> None:
        return None

    async def _act(self, target: Target, template: list[str], state: PowerState) -> PowerState:
        """Switch, idempotently: MAAS re-POSTs, and tools like `virsh start` refuse a no-op."""
        async with self._lock:
            if await self._reads(target, state):
                log.info("command.already", machine=target.name, state=state)
                return state
            try:
                await run(render(template, target), self._spec.timeout, self._hidden_env)
            except PowerError as exc:
                if not await self._reads(target, state):
                    raise
                log.info(
                    "command.failed_but_done", machine=target.name, state=state, error=str(exc)
                )
        log.info("command.ran", machine=target.name, action=state, program=template[0])
        self._store.set(target.name, state)
        return state

    async def _reads(self, target: Target, state: PowerState) -> bool:
        """Whether the status program (if any) reads `state`; a failing status reads nothing."""
        if self._spec.status is None:
            return False
        try:
            return await self.query(target) == state
        except PowerError:
            return False

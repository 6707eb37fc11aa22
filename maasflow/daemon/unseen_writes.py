"""Writes MAAS accepted whose effect no listing has shown yet: none is sent twice meanwhile.

MAAS applies some writes after answering them (power_off and power_on run in the background,
§3.4, §10.1: `power_state` lags them by about a second) and its listings can lag even a write it
applied at once (§10.1: a listing taken ~2 s after a deploy's 200 still said Allocated).
Deciding from such a listing would send the same write again. So after each write MAAS
accepted, the machine is left alone until a listing requested *after* the answer shows its
state changed (status, power, hostname, owner, lock, power type or tags; whichever moved,
the old decision no longer stands), or until a bound has passed without any change:

- `SETTLE_S`, two minutes, for power changes MAAS makes in the background: its power
  drivers retry a change for about a minute before giving up, `query_power_state` waits up
  to 60 s (§3.6), and the rack refreshes `power_state` on its own every few minutes at worst
  (§3.6); a change MAAS confirms shows well within that, one that never shows deserves a
  second try after it;
- `LAG_S`, ten seconds, for writes MAAS applies before answering (commission, deploy,
  allocate, release, rename, tags): only a listing's lag is to be covered (~2 s seen), and
  a short bound matters because such a machine can come back to where it was between two
  listings (a retried commissioning that fails within seconds looks unchanged).

Local actions (provisioning, clearing our record) are not MAAS writes and are not held here.
"""

from __future__ import annotations

from dataclasses import dataclass

from maasflow.daemon.maas.listing import MachineData

SETTLE_S = 120.0
LAG_S = 10.0
BACKGROUND_ACTIONS = frozenset({"power_off", "power_on"})  # MAAS answers before the change
LOCAL_ACTIONS = frozenset({"provision", "provision_poll", "forget_provision"})

Fingerprint = tuple[object, ...]


def fingerprint(machine: MachineData) -> Fingerprint:
    """What a write can change about a machine, as one comparable value."""
    return (
        machine.status,
        machine.power_state,
        machine.hostname,
        machine.fqdn,
        machine.owner,
        machine.locked,
        machine.power_type,
        tuple(sorted(machine.tag_names)),
    )


@dataclass(frozen=True, slots=True)
class _Write:
    before: Fingerprint
    answered_at: float  # monotonic seconds
    settle: float  # how long an unchanged listing is not trusted


class UnseenWrites:
    """Per machine, the last write MAAS accepted that no listing has shown yet."""

    def __init__(self) -> None:
        self._by_id: dict[str, _Write] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def wrote(self, machine: MachineData, action: str, answered_at: float) -> None:
        """MAAS accepted `action` for `machine` (as listed when it was decided)."""
        if action in LOCAL_ACTIONS:
            return
        settle = SETTLE_S if action in BACKGROUND_ACTIONS else LAG_S
        self._by_id[machine.system_id] = _Write(fingerprint(machine), answered_at, settle)

    def holds(self, machine: MachineData, listed_at: float, now: float) -> bool:
        """True while deciding from this listing could repeat an accepted write."""
        write = self._by_id.get(machine.system_id)
        if write is None:
            return False
        if listed_at < write.answered_at:
            return True  # the listing was asked for before MAAS answered the write
        if fingerprint(machine) == write.before and now - write.answered_at < write.settle:
            return True
        del self._by_id[machine.system_id]
        return False

    def forget(self, system_id: str) -> None:
        self._by_id.pop(system_id, None)

"""Adoption: machines that were already running when maasflow first saw them are left running.

A machine MAAS lists as Deployed the first time maasflow sees it, with no provisioning
record of ours, was deployed by someone else (recorded with `maasflow enlist`, deployed by
hand, or provisioned by the system maasflow replaces). It is *adopted*: the lifecycle sends
it nothing (no provisioning, rename, power change, release or redeploy) while it stays in
that deploy. A provisioning record means maasflow deployed it, so it is not adopted. The
adoption ends when MAAS shows the machine on its way to a new deploy (`ENDS_ADOPTION`: New,
Ready, Allocated, Deploying, Releasing, Disk erasing, commissioning or testing, or one of
their failures); from then on it is a machine like any other. Rescue mode, Broken, Missing
or Releasing failed keep it adopted, since the same workload may come back.

`-provision-existing` turns adoption off (what maas-flow did: it provisioned every Deployed
node its provisioner had no record of, `automation/state.go` `Provision`), and so does a
targets rule or a desired-state request that names the machine explicitly (the caller says
so with `explicit`). First sightings outlive restarts in the daemon's store
(`SightingStore`); a store that refuses the write is logged and the sighting kept in memory,
so the worst a broken store does is adopt a Deployed machine again after a restart. A
preview (`read_only`) writes nothing. `Adoptions.adopted` is the one function that answers
the lifecycle's `Observation.adopted`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from maasflow.common.errors import StoreError
from maasflow.daemon.lifecycle import ALLOCATED, DEPLOYED, NEW, READY

log = structlog.get_logger(__name__)

# MAAS statuses (facts §2.2) that mean the machine left the deploy maasflow adopted.
ENDS_ADOPTION = frozenset({NEW, 1, 2, READY, 9, ALLOCATED, 11, 12, 14, 15, 21, 22})


@dataclass(frozen=True)
class Sighting:
    """The first time maasflow saw a machine, and whether it still runs an adopted deploy."""

    system_id: str
    first_status: int  # MAAS's status then
    first_seen: float  # wall-clock seconds
    adopted: bool


class SightingStore(Protocol):
    """Where first sightings outlive the process (the daemon's state store)."""

    def sightings(self) -> list[Sighting]:
        """Every stored sighting."""
        ...

    def save_sighting(self, sighting: Sighting) -> None:
        """Insert or replace the sighting of `sighting.system_id`."""
        ...


class Adoptions:
    """The sightings of every machine, kept in memory and written through to a store."""

    def __init__(
        self,
        store: SightingStore | None,
        *,
        provision_existing: bool = False,
        read_only: bool = False,
    ) -> None:
        self._store = None if read_only else store
        self.provision_existing = provision_existing
        self._by_id = {s.system_id: s for s in (store.sightings() if store else [])}

    def get(self, system_id: str) -> Sighting | None:
        return self._by_id.get(system_id)

    def adopted(
        self, system_id: str, status: int, has_record: bool, now: float, explicit: bool = False
    ) -> bool:
        """Whether the lifecycle must leave this machine as it runs (see the module docstring).

        `explicit`: a targets rule or a desired-state request names this machine, which
        overrides adoption (wired to the targets' `Chosen.label != "default"`).
        """
        sighting = self._seen(system_id, status, has_record, now)
        return sighting.adopted and not (self.provision_existing or explicit)

    def _seen(self, system_id: str, status: int, has_record: bool, now: float) -> Sighting:
        sighting = self._by_id.get(system_id)
        if sighting is None:
            adopted = status == DEPLOYED and not has_record
            sighting = Sighting(system_id, status, now, adopted)
        elif sighting.adopted and status in ENDS_ADOPTION:
            sighting = replace(sighting, adopted=False)
        else:
            return sighting
        self._by_id[system_id] = sighting
        self._save(sighting)
        return sighting

    def _save(self, sighting: Sighting) -> None:
        if self._store is None:
            return
        try:
            self._store.save_sighting(sighting)
        except StoreError as exc:
            log.warning(
                "first sighting not stored; kept in memory",
                system_id=sighting.system_id,
                reason=str(exc),
            )

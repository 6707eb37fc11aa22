"""Applied deploy parameters: what maasflow last sent with each machine's deploy.

A targets rule with `redeploy: true` redeploys a Deployed machine whose deploy parameters
differ from the rule's; the machine itself does not say which parameters it was deployed
with, so maasflow remembers what it sent (`Wanted.deploy`: user data only as a digest).
`AppliedDeploys` keeps them in memory, written through to an `AppliedStore` (the daemon's
state file, so a restart remembers). A machine maasflow never deployed has none, and is
never redeployed: nobody knows what it runs. This module remembers; comparing is the
lifecycle's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class AppliedStore(Protocol):
    """Where applied deploy parameters outlive the process."""

    def applied_deploys(self) -> dict[str, dict[str, str]]:
        """Every machine's applied deploy parameters, by system_id."""
        ...

    def save_applied(self, system_id: str, params: Mapping[str, str]) -> None:
        """Insert or replace the applied parameters of `system_id`."""
        ...


class AppliedDeploys:
    """The deploy parameters maasflow last sent, per machine, written through to a store."""

    def __init__(self, store: AppliedStore | None) -> None:
        self._store = store
        self._by_id = dict(store.applied_deploys()) if store is not None else {}

    def get(self, system_id: str) -> Mapping[str, str] | None:
        return self._by_id.get(system_id)

    def deployed(self, system_id: str, params: Mapping[str, str]) -> None:
        """MAAS accepted a deploy with `params`: remember them (the same again: no write)."""
        if self._by_id.get(system_id) == dict(params):
            return
        self._by_id[system_id] = dict(params)
        if self._store is not None:
            self._store.save_applied(system_id, params)

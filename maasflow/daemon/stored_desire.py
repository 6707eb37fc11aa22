"""A desire an orchestrator stored for one machine over HTTP, and where such desires persist.

A `StoredDesire` is one row of the store's `desire` table: the machine (system_id, and its
hostname when it was stored), the `Desire` as `Desire.to_json()` gives it, when and by whom.
`PUT /machines/<id>/desired` writes one (`daemon.desire_api`), `DELETE` removes it, and
every pass reads them all again, so a desire stored by any daemon sharing the database is
acted on at the next pass without a restart. A stored desire wins over the targets rules:
`winning` gives the label (`API_LABEL`) and the desire a pass uses.

`summary` is the one rendering of a desire for logs, histories, `/state` and `maasflow
status`: user data is cloud-init's and often carries secrets, so it shows as its size only.

`DesireStore` is the contract (the daemon's state file: `daemon.store`, `daemon.postgres_store`;
tests/store/ checks both). This module stores nothing itself and decides nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from maasflow.common.errors import ConfigError
from maasflow.daemon.desire import Desire
from maasflow.daemon.lifecycle import Target

API_LABEL = "api"  # the label of a desire stored over HTTP
BY_LIMIT = 200  # characters of `set_by` kept


@dataclass(frozen=True)
class StoredDesire:
    """One machine's stored desire; `desire` is `Desire.to_json()`, `set_at` wall-clock seconds."""

    system_id: str
    hostname: str
    desire: Mapping[str, Any]
    set_at: float
    set_by: str

    def parsed(self) -> Desire:
        """The `Desire` it holds; ConfigError when it no longer parses (a newer maasflow's)."""
        return Desire.parse(self.desire, f"stored desire of {self.system_id}")

    def encoded(self) -> str:
        """`desire` as the store's text column holds it."""
        return json.dumps(dict(self.desire), sort_keys=True, separators=(",", ":"))

    @classmethod
    def decoded(
        cls, system_id: str, hostname: str, desire: str, set_at: float, set_by: str
    ) -> StoredDesire:
        """A row read back from the store (its `desire` column is JSON text)."""
        value = json.loads(desire)
        return cls(system_id, hostname, value if isinstance(value, dict) else {}, set_at, set_by)


def winning(stored: StoredDesire) -> tuple[str, Desire]:
    """The label and desire a pass uses for `stored`; one that no longer parses (written by
    a newer maasflow) keeps hands off rather than fall back to the rules."""
    try:
        return API_LABEL, stored.parsed()
    except ConfigError as exc:
        return f"{API_LABEL} (unreadable: {exc}; hands off)", Desire(target=Target.IGNORE)


def summary(desire: Mapping[str, Any]) -> str:
    """`target=ready release.quick_erase=true`: the fields that differ from the default,
    user data as its size only; `default` when none does."""
    parts = []
    for name, value in sorted(desire.items()):
        if name == "user_data":
            parts.append(f"user_data=<{len(str(value).encode())} bytes>")
        elif isinstance(value, Mapping):
            parts += [f"{name}.{k}={_text(v)}" for k, v in sorted(value.items())]
        else:
            parts.append(f"{name}={_text(value)}")
    return " ".join(parts) or "default"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def public(stored: StoredDesire) -> dict[str, Any]:
    """What unauthenticated readers (`/state`, `/machines/<id>`) see: no user data."""
    return {"summary": summary(stored.desire), "set_at": stored.set_at, "set_by": stored.set_by}


class DesireStore(Protocol):
    """Where stored desires outlive the process (the daemon's state file)."""

    def desires(self) -> list[StoredDesire]:
        """Every stored desire, ordered by system_id."""
        ...

    def save_desire(self, stored: StoredDesire) -> None:
        """Store `stored`, replacing the machine's previous one (`set_by` clipped to BY_LIMIT)."""
        ...

    def clear_desire(self, system_id: str) -> bool:
        """Forget the machine's stored desire; True when there was one."""
        ...

"""The desires orchestrators stored over HTTP, as the daemon holds them between passes.

`DesiredStates` keeps every `StoredDesire` of the store by system_id. The daemon reads them
all again at every pass (`reload`, beside the provisioning records), so a desire written by
this daemon or by another one sharing the database is acted on at the next pass, and one a
request deleted is forgotten there too. `store` and `clear` write through to the store first
and change what is held only once the store took the change, so what `show` answers is what
a restart would read; each is an operator event in the machine's history.

What may be stored for which machine is decided here too, from what the last pass saw of it
(its `MachineView`): a machine the last pass did not list is unknown (`LookupError`, a 404),
and one maasflow cannot touch (the filters leave it out, it is locked, another MAAS user
owns it) is `Untouchable` (a 409), with why. The HTTP shapes are `daemon.desire_api`'s;
which desire wins is the daemon's `desire_for`; acting on it is the lifecycle's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from maasflow.daemon.desire import Desire
from maasflow.daemon.history import EventKind
from maasflow.daemon.stored_desire import API_LABEL, DesireStore, StoredDesire, summary, winning
from maasflow.daemon.views import MachineView, MachineViews

log = structlog.get_logger(__name__)

# Daemon._note: (system_id, hostname, kind, action, outcome, detail) into the history.
Note = Callable[[str, str, str, str, str, str], None]


class Untouchable(Exception):
    """maasflow cannot act on this machine (filtered out, locked, another user's); says why."""


def untouchable(view: MachineView, me: str) -> str | None:
    """Why maasflow (MAAS user `me`) cannot act on the machine `view` shows; None if it can."""
    if not view.selected:
        return view.reason or "filtered out"
    if view.locked:
        return "locked in MAAS: unlock it first"
    if view.owner and view.owner != me:
        return f"owned by {view.owner}, not by maasflow's MAAS user {me}"
    return None


class DesiredStates:
    """Every stored desire by system_id, read from `store` at each pass and written through."""

    def __init__(
        self,
        store: DesireStore,
        views: MachineViews,
        *,
        clock: Callable[[], float],
        note: Note,
        me: Callable[[], str],
    ) -> None:
        self._store = store
        self._views = views
        self._clock = clock
        self._note = note
        self._me = me
        self._held: dict[str, StoredDesire] = {}
        self._used: dict[str, tuple[str, Desire]] = {}  # the desire each last decision used
        self._parsed: dict[str, tuple[StoredDesire, tuple[str, Desire]]] = {}  # parse once

    def reload(self) -> None:
        """Read every stored desire again; StoreError (and nothing changed) when refused."""
        self._held = {d.system_id: d for d in self._store.desires()}
        for gone in self._parsed.keys() - self._held.keys():
            del self._parsed[gone]

    def winning(self, system_id: str) -> tuple[str, Desire] | None:
        """The label and desire a pass uses for the machine's stored desire (`winning`), or
        None; parsed once per stored row, not at every ask of every pass."""
        stored = self._held.get(system_id)
        if stored is None:
            return None
        cached = self._parsed.get(system_id)
        if cached is None or cached[0] != stored:
            cached = self._parsed[system_id] = (stored, winning(stored))
        return cached[1]

    def get(self, system_id: str) -> StoredDesire | None:
        return self._held.get(system_id)

    def find(self, key: str) -> StoredDesire | None:
        """The desire stored for the machine whose system_id, else hostname, is `key`."""
        found = self._held.get(key)
        if found is not None:
            return found
        return next((d for d in self._held.values() if d.hostname == key), None)

    def decided(self, system_id: str, label: str, desire: Desire) -> None:
        """The machine's last decision used `desire` (from `label`): what `show` answers
        when none is stored."""
        self._used[system_id] = (label, desire)

    def forget(self, system_id: str) -> None:
        """MAAS no longer lists the machine: forget what its decisions used."""
        self._used.pop(system_id, None)

    # -- the routes' operations (`daemon.desire_api`) -------------------------------------

    def show(self, key: str) -> dict[str, Any]:
        """Machine `key`'s stored desire, else the one its last decision used; LookupError
        when neither the last pass nor the store knows it."""
        sid, hostname, view, stored = self._named(key)
        used = self._used.get(sid)
        if stored is not None:  # its label says when a pass could not read it
            source = used[0] if used is not None and used[0].startswith(API_LABEL) else API_LABEL
            doc = {"source": source, "desire": dict(stored.desire), "set_at": stored.set_at,
                   "set_by": stored.set_by}  # fmt: skip
        elif used is not None and view is not None and view.selected:
            doc = {"source": used[0], "desire": used[1].to_json()}
        else:  # left out by the filters: no rule applies to it
            doc = {"source": "none", "desire": None}
        why = None if view is None else untouchable(view, self._me())
        return {"system_id": sid, "hostname": hostname, **doc, "untouchable": why}

    def store(self, key: str, raw: Mapping[str, Any], by: str) -> dict[str, Any]:
        """Store `raw` as machine `key`'s desire, acted on from the next pass. LookupError when
        the last pass did not list it; `Untouchable` when maasflow cannot act on it;
        ConfigError naming a bad field; StoreError when the store refused it."""
        view = self._views.find(key)
        if view is None:
            raise LookupError(key)
        why = untouchable(view, self._me())
        if why is not None:
            raise Untouchable(why)
        desire = Desire.parse(raw, "desired")
        stored = StoredDesire(view.system_id, view.hostname, desire.to_json(), self._clock(), by)
        self._store.save_desire(stored)
        self._held[stored.system_id] = stored
        self._noted(view.system_id, view.hostname, "set", summary(stored.desire), by)
        return self.show(view.system_id)

    def clear(self, key: str, by: str) -> dict[str, Any]:
        """Forget machine `key`'s stored desire: the rules decide again from the next pass."""
        sid, hostname, _view, _stored = self._named(key)
        existed = self._store.clear_desire(sid)
        deleted = self._held.pop(sid, None) is not None or existed
        if deleted:
            self._noted(sid, hostname, "cleared", "back to the rules", by)
        return {"system_id": sid, "hostname": hostname, "deleted": deleted}

    def _named(self, key: str) -> tuple[str, str, MachineView | None, StoredDesire | None]:
        """(system_id, hostname, view, stored desire) of machine `key` (system_id or hostname),
        as the last pass or the stored desires know it; LookupError when neither does."""
        view, stored = self._views.find(key), self.find(key)
        if view is not None:
            return view.system_id, view.hostname, view, self._held.get(view.system_id)
        if stored is not None:
            return stored.system_id, stored.hostname, None, stored
        raise LookupError(key)

    def _noted(self, sid: str, hostname: str, outcome: str, what: str, by: str) -> None:
        self._note(sid, hostname, EventKind.OPERATOR, "desire", outcome, f"{what} (by {by})")
        log.warning("desired state " + outcome, system_id=sid, hostname=hostname, desire=what,
                    by=by)  # fmt: skip

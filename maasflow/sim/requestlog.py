"""The request log: one record per HTTP request the simulator answered (or dropped).

Tests and benchmarks read it in-process (`sim.request_log`) to prove things such as "each
machine was commissioned once": `ops_for(system_id)` lists the operations that took effect
on one machine, in order. An op "took effect" when its handler ran and answered 2xx, even if
an after-handler fault (`drop_after`, `truncate`, `malformed`) then lost or spoiled that
answer on its way to the client; an `allocate` with `dry_run` never takes effect. Parameter
values whose names look secret (passwords, tokens) are stored redacted. Nothing here
decides an answer; `asgi.py` appends a record after each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from maasflow.sim.http import Params

_SECRET_HINTS = ("pass", "token", "secret")
_CRUD = {"GET": "read", "PUT": "update", "DELETE": "delete", "POST": "create"}


@dataclass(frozen=True)
class RequestRecord:
    """What one request asked and how it was answered (`status` None = dropped).

    `outcome` is the handler's own status (None when a fault kept the handler from running);
    it differs from `status` when an after-handler fault spoiled or dropped the answer.
    `dry_run` marks a request the handler served without changing anything.
    """

    method: str
    path: str
    op: str | None
    status: int | None
    time: float
    params: Params = field(default_factory=dict)
    system_id: str | None = None
    user: str | None = None
    fault: str | None = None
    outcome: int | None = None
    dry_run: bool = False

    @property
    def effective(self) -> bool:
        """True when the handler ran, succeeded and was no dry run (heard by the client or not)."""
        handled = self.status if self.fault is None else self.outcome
        return not self.dry_run and handled is not None and 200 <= handled < 300

    @property
    def action(self) -> str:
        """The op name, or read/update/delete/create for plain CRUD."""
        return self.op or _CRUD.get(self.method, self.method.lower())


def redact(params: Params) -> Params:
    """A copy of `params` with secret-looking values replaced by "***"."""
    return {
        name: ["***"] * len(values) if any(hint in name for hint in _SECRET_HINTS) else values
        for name, values in params.items()
        if not name.startswith("oauth_")
    }


class RequestLog:
    """An append-only list of `RequestRecord`s with a few questions answered."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def __getitem__(self, index: int) -> RequestRecord:
        return self._records[index]

    def clear(self) -> None:
        """Forget every record (e.g. between phases of a test)."""
        self._records.clear()

    def for_machine(self, system_id: str) -> list[RequestRecord]:
        """Every request that targeted one machine, in order."""
        return [record for record in self._records if record.system_id == system_id]

    def ops_for(self, system_id: str, effective_only: bool = True) -> list[str]:
        """The actions (op names or CRUD names) done to one machine, in order."""
        return [
            record.action
            for record in self.for_machine(system_id)
            if record.effective or not effective_only
        ]

    def writes(self) -> list[RequestRecord]:
        """Every request that was not a GET."""
        return [record for record in self._records if record.method != "GET"]

    def faulted(self) -> list[RequestRecord]:
        """Every request that got an injected fault."""
        return [record for record in self._records if record.fault is not None]

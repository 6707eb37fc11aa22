"""How one action went, as the actuator reports it and the daemon logs and counts it.

Where this module stops: it only names the result; nothing here acts or logs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """How an action went: `ok`, `running` (provisioning continues) or `failed`.

    `provisioned_in` is set when a provisioning attempt ended (either way): the seconds
    since it started, which may span many passes in URL mode.
    """

    result: str
    detail: str = ""
    provisioned_in: float | None = None


OK = Outcome("ok")

"""The environment programs started by `maasflow serve` get: the service's own, minus secrets.

Power programs (the command backend) and provisioning scripts (the job pool) inherit the
service's environment, except the variables that hold its secrets: the power target's own
credentials (`MAASFLOW_POWER_TOKEN`, `MAASFLOW_POWER_PASS`), the provisioning API's token
(`MAASFLOW_PROVISION_TOKEN`, and the daemon's `PROVISION_TOKEN` should the two share an
environment), every variable the power config
names as a `password_env`, and anything ending in `MAAS_API_KEY`. This module only filters;
the callers add what their children need.
"""

from __future__ import annotations

import os
from collections.abc import Collection

ALWAYS_HIDDEN = frozenset(
    {"MAASFLOW_POWER_TOKEN", "MAASFLOW_POWER_PASS", "MAASFLOW_PROVISION_TOKEN", "PROVISION_TOKEN"}
)


def scrubbed_environ(hidden: Collection[str] = ()) -> dict[str, str]:
    """A copy of `os.environ` without the service's secrets and the `hidden` names."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ALWAYS_HIDDEN
        and key not in hidden
        and not key.upper().endswith("MAAS_API_KEY")
    }

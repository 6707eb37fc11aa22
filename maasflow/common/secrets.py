"""Secrets: the one place that reads, validates and hides every secret maasflow handles.

The daemon's MAAS API key, the provisioning Bearer token, and `maasflow serve`'s power
passwords and tokens are read here (one capped file reader), checked here (each shape once),
and kept out of children's environments here (one scrub, used by the one child runner).
It does not log and does not decide where a secret comes from: settings do that.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

# --- reading and validating -------------------------------------------------------------

# --- keeping secrets out of children ------------------------------------------------------

# Every variable that holds a secret of maasflow's, by name (each also prefixed `AUTOMATION_`).
SECRET_NAMES = frozenset(
    {
        "MAAS_API_KEY",  # the daemon's MAAS API key
        "PROVISION_TOKEN",  # the daemon's Bearer token for an HTTP provisioner
        "MAASFLOW_PROVISION_TOKEN",  # serve's provisioning API token
        "MAASFLOW_POWER_TOKEN",  # serve's power target: MAAS's Bearer token
        "MAASFLOW_POWER_PASS",  # serve's power target: MAAS's Basic auth password
    }
)
MAAS_KEY_SUFFIX = "MAAS_API_KEY"  # any spelling of a MAAS key: PROD_MAAS_API_KEY, ...
_DAEMON_PREFIX = "AUTOMATION_"  # the daemon reads every variable with this prefix too


def is_secret_name(name: str, hidden: Collection[str] = ()) -> bool:
    """Whether the variable `name` holds a secret: a known one, a MAAS key, or in `hidden`."""
    upper = name.upper()
    return (
        name in hidden
        or upper in SECRET_NAMES
        or upper.removeprefix(_DAEMON_PREFIX) in SECRET_NAMES
        or upper.endswith(MAAS_KEY_SUFFIX)
    )


def scrubbed_environ(
    hidden: Collection[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A copy of `environ` (default `os.environ`) without any secret's variable.

    `hidden` names more: serve's power config `password_env` names, say. The child runner
    applies this to every environment it starts a program with.
    """
    source = os.environ if environ is None else environ
    return {key: value for key, value in source.items() if not is_secret_name(key, hidden)}

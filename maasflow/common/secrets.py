"""Secrets: the one place that reads, validates and hides every secret maasflow handles.

The daemon's MAAS API key, the provisioning Bearer token, and `maasflow serve`'s power
passwords and tokens are read here (one capped file reader), checked here (each shape once),
and kept out of children's environments here (one scrub, used by the one child runner).
It does not log and does not decide where a secret comes from: settings do that.
"""

from __future__ import annotations

# --- reading and validating -------------------------------------------------------------

# --- keeping secrets out of children ------------------------------------------------------

"""SIGHUP: read the filter, mappings and targets files again and use them from the next pass.

`systemctl reload maasflow` (the unit's `ExecReload=/bin/kill -HUP $MAINPID`) or a plain
`kill -HUP` lands here. Only a setting given as `@path` can change while the daemon runs
(inline JSON in a flag or the environment is fixed at start); each such file is read and
checked by the same rules as at start-up (`daemon.setting_values`), one at a time:

    the file loads, and differs   -> the daemon uses it from its next pass (a pass under
                                     way finishes with the old one); logged at info
    the file loads, and is equal  -> nothing changes
    the file fails to load        -> the daemon keeps the one it had, and logs why (error)
    the setting is inline/default -> nothing to read again

So a half-written or mistyped file never leaves the daemon without a filter, and SIGHUP
never stops it. Machines a new filter no longer selects are forgotten by the next pass as if
they had left MAAS; machines whose targets rule changed follow the new one from the next pass (a
user_data_file or provision script a rule names is read again with it). Every other setting
(MAAS URL, key, period, ...) needs a restart. This module reads files and swaps two values;
deciding what a pass does with them is the loop's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from maasflow.common.errors import ConfigError
from maasflow.daemon import setting_values as check
from maasflow.daemon.loop import Daemon
from maasflow.daemon.setting_sources import Given

log = structlog.get_logger(__name__)

_PARSERS: dict[str, Callable[[str, str, Mapping[str, str]], Any]] = {
    "filter": check.filter_spec,
    "mappings": check.mappings,
    "targets": check.targets,
}
_ATTRIBUTE = {"filter": "filters", "mappings": "mappings", "targets": "targets"}  # the Daemon's


class ReloadOutcome(enum.StrEnum):
    """What one SIGHUP did to one setting."""

    RELOADED = "reloaded"  # the file changed; the next pass uses it
    UNCHANGED = "unchanged"  # the file says what the daemon already uses
    KEPT = "kept"  # the file failed to load; the daemon keeps the one it had
    FIXED = "fixed"  # given inline or not at all: nothing to read again


def reload_settings(daemon: Daemon, sources: Mapping[str, Given]) -> dict[str, ReloadOutcome]:
    """Read every `@file` setting in `sources` again and give `daemon` those that changed."""
    outcomes = {name: _reload_one(daemon, name, sources.get(name)) for name in _PARSERS}
    if daemon.feed is not None and ReloadOutcome.RELOADED in outcomes.values():
        daemon.feed.ask_full()  # with events: every machine is judged by the new files
    log.info("reload", **{name: outcome.value for name, outcome in outcomes.items()})
    return outcomes


def _reload_one(daemon: Daemon, name: str, given: Given | None) -> ReloadOutcome:
    if given is None or not given.text.startswith("@"):
        return ReloadOutcome.FIXED
    try:
        value = _PARSERS[name](given.text, given.origin, given.environ)
    except ConfigError as exc:
        log.error(
            "reload failed; keeping the loaded one",
            setting=name,
            file=given.text[1:],
            reason=str(exc),
        )
        return ReloadOutcome.KEPT
    if value == getattr(daemon, _ATTRIBUTE[name]):
        return ReloadOutcome.UNCHANGED
    setattr(daemon, _ATTRIBUTE[name], value)
    log.info("reloaded", setting=name, file=given.text[1:])
    return ReloadOutcome.RELOADED

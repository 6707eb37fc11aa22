"""The last known power state of each machine, kept in a small JSON file across restarts.

Backends that cannot ask the hardware (Wake-on-LAN without a probe, a command without a
status template) answer MAAS's power query from here. The file is rewritten whole on every
change (write a temporary file beside it, fsync, rename), so a crash leaves either the old or
the new content, never half of one. A missing file starts empty; an unreadable or corrupt one
is logged, set aside as `<name>.corrupt`, and the store starts empty rather than refusing to
serve. Without a path the store lives in memory only.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Literal

import structlog

PowerState = Literal["on", "off", "unknown"]
_STATES: frozenset[str] = frozenset({"on", "off", "unknown"})
_VERSION = 1

log = structlog.get_logger(__name__)


class PowerStateStore:
    """Name → (state, when it changed), persisted atomically when a path is given."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._entries: dict[str, dict[str, str | float]] = self._load() if path else {}

    def get(self, name: str) -> PowerState:
        """The last state recorded for `name`, or "unknown"."""
        state = self._entries.get(name, {}).get("state")
        return "on" if state == "on" else "off" if state == "off" else "unknown"

    def set(self, name: str, state: PowerState) -> None:
        """Record a state; the file is only rewritten when something changed."""
        if self._entries.get(name, {}).get("state") == state:
            return
        self._entries[name] = {"state": state, "changed_at": time.time()}
        self._save()

    def snapshot(self) -> dict[str, PowerState]:
        """Every recorded state, by machine name."""
        return {name: self.get(name) for name in self._entries}

    def _load(self) -> dict[str, dict[str, str | float]]:
        assert self._path is not None
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._set_aside(f"{exc.__class__.__name__}: {exc}")
        machines = raw.get("machines") if isinstance(raw, dict) else None
        if not isinstance(machines, dict):
            return self._set_aside("no 'machines' object")
        return {
            str(name): {"state": entry["state"], "changed_at": entry.get("changed_at", 0.0)}
            for name, entry in machines.items()
            if isinstance(entry, dict) and entry.get("state") in _STATES
        }

    def _set_aside(self, reason: str) -> dict[str, dict[str, str | float]]:
        assert self._path is not None
        aside = self._path.with_name(self._path.name + ".corrupt")
        log.warning(
            "power_state.unreadable", path=str(self._path), reason=reason, moved_to=str(aside)
        )
        try:
            os.replace(self._path, aside)
        except OSError as exc:
            log.warning("power_state.set_aside_failed", path=str(self._path), error=str(exc))
        return {}

    def _save(self) -> None:
        if self._path is None:
            return
        body = json.dumps({"version": _VERSION, "machines": self._entries}, indent=1)
        try:
            _write_atomically(self._path, body)
        except OSError as exc:
            # Serving power requests matters more than remembering them: log and go on.
            log.error("power_state.write_failed", path=str(self._path), error=str(exc))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

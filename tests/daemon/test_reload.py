"""SIGHUP's reload: the filter and mappings files are read again; a bad one keeps the old one.

The settings come from `load_settings`, as the daemon's do, with the filter and the mappings
given as `@file`; the test rewrites the files and calls `reload_settings`, as the SIGHUP
handler does, on a daemon over a fake MAAS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.daemon.mappings import Mappings
from maasflow.daemon.reload import ReloadOutcome, reload_settings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.settings import load_settings

KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
MAC = "52:54:00:00:00:01"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A filter file selecting zone lab-a and an empty mappings file."""
    monkeypatch.setattr("maasflow.daemon.flags.DEFAULT_KEY_FILE", str(tmp_path / "no-key"))
    paths = {"filter": tmp_path / "filter.json", "mappings": tmp_path / "mappings.json"}
    paths["filter"].write_text(json.dumps({"zones": {"include": ["^lab-a$"]}}))
    paths["mappings"].write_text("{}")
    return paths


def settings_for(files: dict[str, Path], tmp_path: Path, **extra: str) -> Any:
    env = {"HOME": str(tmp_path), "MAAS_API_KEY": KEY, "CONF": str(tmp_path), **extra}
    argv = ["-filter", "@$CONF/filter.json", "-mappings", f"@{files['mappings']}"]
    return load_settings(argv, env)


def test_settings_remember_where_the_filter_and_mappings_came_from(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """The reload sources are the text as given (variables unexpanded) and its origin."""
    sources = settings_for(files, tmp_path).reload_from
    assert sources["filter"].text == "@$CONF/filter.json"
    assert sources["filter"].origin == "-filter"
    assert sources["mappings"].text == f"@{files['mappings']}"


def test_a_changed_filter_and_mappings_are_used_after_a_reload(
    files: dict[str, Path], tmp_path: Path, Fake: Any, mk: Callable[..., Any], make_daemon: Any
) -> None:
    """Rewritten files replace the daemon's filter and mappings, and the reload is logged."""
    settings = settings_for(files, tmp_path)
    daemon = make_daemon(Fake([]), filters=settings.filter, mappings=settings.mappings)
    lab_b = mk("a", 0, zone="lab-b", mac=MAC)
    assert not daemon.filters.selects(lab_b)
    files["filter"].write_text(json.dumps({"zones": {"include": ["^lab-b$"]}}))
    files["mappings"].write_text(json.dumps({MAC: "node-b1"}))
    with capture_logs() as logs:
        outcomes = reload_settings(daemon, settings.reload_from)
    assert outcomes == {
        "filter": ReloadOutcome.RELOADED,
        "mappings": ReloadOutcome.RELOADED,
        "targets": ReloadOutcome.FIXED,  # not given
    }
    assert daemon.filters.selects(lab_b)
    assert daemon.mappings.hostname_for(lab_b) == "node-b1"
    assert [e["setting"] for e in logs if e["event"] == "reloaded"] == ["filter", "mappings"]


def test_a_file_that_fails_to_load_keeps_the_old_one_and_says_why(
    files: dict[str, Path], tmp_path: Path, Fake: Any, make_daemon: Any
) -> None:
    """Broken JSON in the filter keeps the loaded filter; the good mappings file still loads."""
    settings = settings_for(files, tmp_path)
    daemon = make_daemon(Fake([]), filters=settings.filter, mappings=settings.mappings)
    old_filter = daemon.filters
    files["filter"].write_text('{"zones": {"include": ["^lab-b$"]')
    files["mappings"].write_text(json.dumps({MAC: "node-b1"}))
    with capture_logs() as logs:
        outcomes = reload_settings(daemon, settings.reload_from)
    assert outcomes == {
        "filter": ReloadOutcome.KEPT,
        "mappings": ReloadOutcome.RELOADED,
        "targets": ReloadOutcome.FIXED,
    }
    assert daemon.filters is old_filter
    (failed,) = [e for e in logs if e["event"] == "reload failed; keeping the loaded one"]
    assert failed["log_level"] == "error"
    assert failed["setting"] == "filter"
    assert "invalid JSON" in failed["reason"] and "filter.json" in failed["reason"]


def test_a_vanished_file_keeps_the_old_one(
    files: dict[str, Path], tmp_path: Path, Fake: Any, make_daemon: Any
) -> None:
    """A mappings file removed since start-up is reported and the loaded mappings stay."""
    settings = settings_for(files, tmp_path)
    daemon = make_daemon(Fake([]), mappings=Mappings.load(json.dumps({MAC: "kept"}), "test"))
    files["mappings"].unlink()
    with capture_logs() as logs:
        outcomes = reload_settings(daemon, settings.reload_from)
    assert outcomes["mappings"] is ReloadOutcome.KEPT
    assert len(daemon.mappings) == 1
    assert any("cannot read file" in e.get("reason", "") for e in logs)


def test_unchanged_and_inline_settings_are_left_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, Fake: Any, make_daemon: Any
) -> None:
    """Inline JSON cannot change while the daemon runs, and no filter at all is the default."""
    monkeypatch.setattr("maasflow.daemon.flags.DEFAULT_KEY_FILE", str(tmp_path / "no-key"))
    env = {"HOME": str(tmp_path), "MAAS_API_KEY": KEY, "MAC_TO_NAME_MAPPINGS": "{}"}
    settings = load_settings([], env)
    daemon = make_daemon(Fake([]), filters=FilterSpec.default())
    outcomes = reload_settings(daemon, settings.reload_from)
    assert outcomes == {
        "filter": ReloadOutcome.FIXED,
        "mappings": ReloadOutcome.FIXED,
        "targets": ReloadOutcome.FIXED,
    }
    assert daemon.filters == FilterSpec.default()


def test_reloading_an_unchanged_file_changes_nothing(
    files: dict[str, Path], tmp_path: Path, Fake: Any, make_daemon: Any
) -> None:
    """Files that say what the daemon uses already are reported unchanged."""
    settings = settings_for(files, tmp_path)
    daemon = make_daemon(Fake([]), filters=settings.filter, mappings=settings.mappings)
    outcomes = reload_settings(daemon, settings.reload_from)
    assert outcomes == {
        "filter": ReloadOutcome.UNCHANGED,
        "mappings": ReloadOutcome.UNCHANGED,
        "targets": ReloadOutcome.FIXED,  # not given
    }

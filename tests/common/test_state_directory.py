"""The one state-directory resolver: systemd's, else XDG's, else ~/.local/state/maasflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from maasflow.common.options import first_state_directory, state_directory


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/maasflow"}, Path("/var/lib/maasflow")),
        ({"STATE_DIRECTORY": "/a:/b", "XDG_STATE_HOME": "/x"}, Path("/a")),
        ({"STATE_DIRECTORY": "", "XDG_STATE_HOME": "/x"}, Path("/x/maasflow")),
        ({"XDG_STATE_HOME": "/x", "HOME": "/home/u"}, Path("/x/maasflow")),
        ({"HOME": "/home/u"}, Path("/home/u/.local/state/maasflow")),
        ({"HOME": ""}, Path.home() / ".local/state/maasflow"),
        ({}, Path.home() / ".local/state/maasflow"),
    ],
    ids=["systemd", "first-of-several", "empty-is-unset", "xdg", "home", "empty-home", "none"],
)
def test_state_directory(env: dict[str, str], expected: Path) -> None:
    """$STATE_DIRECTORY (first of several) beats $XDG_STATE_HOME/maasflow beats ~/.local/state."""
    assert state_directory(env) == expected


def test_first_state_directory_keeps_a_single_path() -> None:
    """One path is kept whole; systemd's colon-joined list gives its first."""
    assert first_state_directory("/var/lib/maasflow") == "/var/lib/maasflow"
    assert first_state_directory("/var/lib/a:/var/lib/b") == "/var/lib/a"

"""`-retry-failed` / RETRY_FAILED and `-quarantine-tag` / QUARANTINE_TAG: values and refusals."""

from __future__ import annotations

import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.settings import load_settings


def test_retry_failed_is_off_and_the_tag_named_by_default(env: dict[str, str]) -> None:
    """Without either setting no failed machine is retried; the tag is maasflow-quarantine."""
    settings = load_settings([], env)
    assert (settings.retry_failed, settings.quarantine_tag) == (0, "maasflow-quarantine")


def test_flags_beat_the_environment(env: dict[str, str]) -> None:
    """RETRY_FAILED / QUARANTINE_TAG are read, and the flags win over them."""
    env |= {"RETRY_FAILED": "2", "QUARANTINE_TAG": "from-env"}
    assert (load_settings([], env).retry_failed, load_settings([], env).quarantine_tag) == (
        2,
        "from-env",
    )
    flags = ["-retry-failed", "5", "-quarantine-tag=flagged_1"]
    settings = load_settings(flags, env)
    assert (settings.retry_failed, settings.quarantine_tag) == (5, "flagged_1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-retry-failed", "-1"], "-retry-failed: -1 is out of range; use 0 (off) to 100"),
        (["-retry-failed", "two"], "-retry-failed: 'two' is not a whole number"),
        (["-quarantine-tag", "bad tag"], "-quarantine-tag: 'bad tag' is not a MAAS tag name"),
        (["-quarantine-tag", "../x"], "-quarantine-tag: '../x' is not a MAAS tag name"),
    ],
)
def test_bad_values_name_the_flag_and_the_fix(
    env: dict[str, str], argv: list[str], message: str
) -> None:
    """One line naming the flag, the value and what to give instead."""
    with pytest.raises(ConfigError) as caught:
        load_settings(argv, env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)

"""`-max-answer-size` / `MAAS_MAX_ANSWER_SIZE`: the cap on one MAAS answer, as a size."""

from __future__ import annotations

import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.settings import load_settings


def test_the_default_cap_fits_a_region_of_thirty_thousand_machines(env: dict[str, str]) -> None:
    """256 MiB by default: a real machine object is ~8.7 KB, so ~30,000 machines fit."""
    assert load_settings([], env).max_answer_bytes == 256 * 1024 * 1024 > 30_000 * 8_700


@pytest.mark.parametrize(
    ("given", "size"),
    [
        ("1073741824", 1024**3),
        ("512MiB", 512 * 1024**2),
        ("2GiB", 2 * 1024**3),
        ("4096KiB", 4 * 1024**2),
    ],
)
def test_the_cap_is_read_from_the_flag_or_the_environment(
    env: dict[str, str], given: str, size: int
) -> None:
    """Bytes or KiB/MiB/GiB, by flag or by variable (the flag wins)."""
    assert load_settings(["-max-answer-size", given], env).max_answer_bytes == size
    assert load_settings([], {**env, "MAAS_MAX_ANSWER_SIZE": given}).max_answer_bytes == size


@pytest.mark.parametrize(
    ("given", "problem"),
    [("lots", "is not a size"), ("1.5GiB", "is not a size"), ("-5", "is not a size"),
     ("64KiB", "too small")],
)  # fmt: skip
def test_a_bad_cap_is_one_line_naming_the_setting(
    env: dict[str, str], given: str, problem: str
) -> None:
    """A size that is not one, or too small for any listing, is a ConfigError naming its source."""
    with pytest.raises(ConfigError, match=problem) as caught:
        load_settings([], {**env, "MAAS_MAX_ANSWER_SIZE": given})
    assert str(caught.value).startswith("MAAS_MAX_ANSWER_SIZE")

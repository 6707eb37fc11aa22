"""The daemon's provisioning token: PROVISION_TOKEN, PROVISION_TOKEN_FILE, -provision-token-file."""

from __future__ import annotations

from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.flags import help_text, render_reference_markdown
from maasflow.daemon.settings import load_settings

TOKEN = "tok-Abc123_secret"
URL = "http://127.0.0.1:9420/provision/"


def test_token_from_env(env: dict[str, str]) -> None:
    """PROVISION_TOKEN gives the token, stripped, kept as a secret."""
    settings = load_settings([], env | {"PROVISION_URL": URL, "PROVISION_TOKEN": f" {TOKEN}\n"})
    assert settings.provision_token is not None
    assert settings.provision_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.describe())
    assert settings.describe()["provision_bearer"] == "set"


def test_no_token_is_unset(env: dict[str, str]) -> None:
    """Without a token the setting is None and describe() says "unset"."""
    settings = load_settings([], env | {"PROVISION_URL": URL})
    assert settings.provision_token is None
    assert settings.describe()["provision_bearer"] == "unset"


def test_token_file_from_env_and_flag(env: dict[str, str], tmp_path: Path) -> None:
    """PROVISION_TOKEN_FILE and -provision-token-file read the token from a file."""
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    by_env = load_settings([], env | {"PROVISION_URL": URL, "PROVISION_TOKEN_FILE": str(path)})
    by_flag = load_settings(["-provision-token-file", str(path), "-provision-url", URL], env)
    for settings in (by_env, by_flag):
        assert settings.provision_token is not None
        assert settings.provision_token.get_secret_value() == TOKEN


def test_flag_file_beats_env_token_beats_env_file(env: dict[str, str], tmp_path: Path) -> None:
    """Precedence: the flag's file, then PROVISION_TOKEN, then PROVISION_TOKEN_FILE."""
    (tmp_path / "a").write_text("from-flag")
    (tmp_path / "b").write_text("from-env-file")
    both = env | {"PROVISION_URL": URL, "PROVISION_TOKEN": "from-env"}
    both |= {"PROVISION_TOKEN_FILE": str(tmp_path / "b")}
    flagged = load_settings(["-provision-token-file", str(tmp_path / "a")], both)
    assert flagged.provision_token is not None
    assert flagged.provision_token.get_secret_value() == "from-flag"
    unflagged = load_settings([], both).provision_token
    assert unflagged is not None and unflagged.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"PROVISION_TOKEN": "   "}, "PROVISION_TOKEN: empty"),
        ({"PROVISION_TOKEN": "two words"}, "printable ASCII"),
        ({"PROVISION_TOKEN_FILE": "/nonexistent/token"}, "cannot read"),
    ],
)
def test_bad_token_is_a_config_error(
    env: dict[str, str], extra: dict[str, str], message: str
) -> None:
    """An empty, malformed or unreadable token is a one-line ConfigError."""
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings([], env | {"PROVISION_URL": URL} | extra)
    assert "two words" not in str(caught.value)


@pytest.mark.parametrize("provision_url", ["", "/bin/true"])
def test_token_needs_an_http_provision_url(env: dict[str, str], provision_url: str) -> None:
    """A token with a script path or no PROVISION_URL is a ConfigError, not silently unused."""
    with pytest.raises(ConfigError, match="http\\(s\\) PROVISION_URL"):
        load_settings([], env | {"PROVISION_URL": provision_url, "PROVISION_TOKEN": TOKEN})


def test_reference_and_help_list_the_token_settings() -> None:
    """The README table and -h both name PROVISION_TOKEN and PROVISION_TOKEN_FILE."""
    for text in (render_reference_markdown(), help_text()):
        assert "PROVISION_TOKEN_FILE" in text and "provision-token-file" in text
        assert (
            "PROVISION_TOKEN," in text or "`PROVISION_TOKEN`" in text or "PROVISION_TOKEN\n" in text
        )

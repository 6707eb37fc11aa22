"""pydantic-settings does the reading: validation aliases, the source chain, and its errors.

`Settings` built in code (no `load_settings`) reads `os.environ` and systemd's credentials
through its own `settings_customise_sources`; `load_settings` runs the same chain with the
flags on top, over the environment it is given. These tests pin that down, and the
precedence rows of the chain that the other configuration tests do not reach.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr, ValidationError

from maasflow.common.errors import ConfigError
from maasflow.daemon.flags import OPTIONS
from maasflow.daemon.setting_sources import (
    CredentialSource,
    EnvironmentSource,
    FlagSource,
    SecretFileSource,
    StateDirectorySource,
    setting_sources,
)
from maasflow.daemon.settings import Settings, load_settings

KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
OTHER_KEY = "xxxx:yyyy:zzzzzzzz"
URL = "http://127.0.0.1:9420/provision/"


@pytest.fixture
def os_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """os.environ without any variable the settings read (nor a credentials directory)."""
    for option in OPTIONS:
        for name in option.env_names:
            monkeypatch.delenv(name, raising=False)
    for name in ("CREDENTIALS_DIRECTORY", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", env["HOME"])
    return monkeypatch


def test_each_fields_environment_names_are_its_validation_aliases() -> None:
    """The model declares its variables: field name (for code), AUTOMATION_<NAME>, <NAME>."""
    alias = Settings.model_fields["period"].validation_alias
    assert isinstance(alias, AliasChoices)
    assert alias.choices == ["period", "AUTOMATION_MAAS_QUERY_INTERVAL", "MAAS_QUERY_INTERVAL"]
    once = Settings.model_fields["once"].validation_alias
    assert isinstance(once, AliasChoices) and once.choices == ["once"]  # a flag only


def test_the_chain_runs_flags_then_environment_then_files_then_defaults() -> None:
    """The sources, highest precedence first, as the settings docstring draws them."""
    chain = [type(source) for source in setting_sources(Settings, [], {})]
    assert chain == [
        FlagSource,
        SecretFileSource,  # a token file a flag names
        EnvironmentSource,
        SecretFileSource,  # a token file a variable names
        CredentialSource,  # $CREDENTIALS_DIRECTORY/provision_token (http(s) URL only)
        SecretFileSource,  # $CREDENTIALS_DIRECTORY/maas_api_key
        SecretFileSource,  # the key file
        StateDirectorySource,
    ]


def test_settings_built_in_code_read_the_environment_themselves(
    os_env: pytest.MonkeyPatch,
) -> None:
    """Settings() reads os.environ through its sources; AUTOMATION_ wins over the bare name."""
    os_env.setenv("MAAS_URL", "http://bare.test/MAAS")
    os_env.setenv("AUTOMATION_MAAS_URL", "http://prefixed.test/MAAS")
    os_env.setenv("MAAS_QUERY_INTERVAL", "1m30s")
    settings = Settings(api_key=SecretStr(KEY))
    assert settings.maas_url == "http://prefixed.test/MAAS"
    assert settings.period == 90.0


def test_values_set_in_code_beat_the_environment(os_env: pytest.MonkeyPatch) -> None:
    """Init arguments come first in the chain, as pydantic-settings orders them by default."""
    os_env.setenv("MAAS_QUERY_INTERVAL", "1m")
    assert Settings(api_key=SecretStr(KEY), period="5s").period == 5.0


def test_a_field_name_is_not_an_environment_variable(os_env: pytest.MonkeyPatch) -> None:
    """Only the documented names are read: a variable called `maas_url` is ignored."""
    os_env.setenv("maas_url", "http://lower.test/MAAS")
    assert Settings(api_key=SecretStr(KEY)).maas_url == "http://localhost:5240/MAAS"


def test_a_bad_variable_fails_validation_naming_it(os_env: pytest.MonkeyPatch) -> None:
    """pydantic's ValidationError carries our one line, which names the variable read."""
    os_env.setenv("AUTOMATION_CONCURRENCY", "0")
    with pytest.raises(ValidationError) as info:
        Settings(api_key=SecretStr(KEY))
    error = info.value.errors()[0]
    assert error["loc"] == ("concurrency",)
    assert str(error["ctx"]["error"]).startswith("AUTOMATION_CONCURRENCY: 0 is out of range")


def test_the_key_comes_from_the_credentials_directory(
    os_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no key given, Settings() reads $CREDENTIALS_DIRECTORY/maas_api_key (LoadCredential)."""
    (tmp_path / "maas_api_key").write_text(KEY + "\n")
    os_env.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = Settings()
    assert settings.api_key.get_secret_value() == KEY
    assert settings.api_key_origin == str(tmp_path / "maas_api_key")


def test_a_malformed_credential_is_named_by_its_file(env: dict[str, str], tmp_path: Path) -> None:
    """A bad key in the credential names CREDENTIALS_DIRECTORY and the file, not the key."""
    del env["MAAS_API_KEY"]
    (tmp_path / "maas_api_key").write_text("SECRETPART:only-two")
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings([], env)
    message = str(info.value)
    assert message.startswith(f"CREDENTIALS_DIRECTORY file '{tmp_path / 'maas_api_key'}': ")
    assert "colon-separated" in message and "SECRETPART" not in message


def test_load_settings_reads_the_given_environment_only(
    os_env: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """The environment passed to load_settings is the one read, never os.environ besides it."""
    os_env.setenv("MAAS_URL", "http://os-environ.test/MAAS")
    assert load_settings([], env).maas_url == "http://localhost:5240/MAAS"


def test_an_empty_prefixed_variable_falls_back_to_the_bare_one(env: dict[str, str]) -> None:
    """AUTOMATION_MAAS_URL="" counts as unset, so MAAS_URL is read."""
    env.update(AUTOMATION_MAAS_URL="", MAAS_URL="http://bare.test/MAAS")
    assert load_settings([], env).maas_url == "http://bare.test/MAAS"


def test_a_key_file_flag_is_only_a_fallback(env: dict[str, str], tmp_path: Path) -> None:
    """-api-key-file is read only when neither -apiKey nor MAAS_API_KEY gives the key."""
    (tmp_path / "key").write_text(OTHER_KEY)
    argv = ["-api-key-file", str(tmp_path / "key")]
    assert load_settings(argv, env).api_key.get_secret_value() == KEY
    del env["MAAS_API_KEY"]
    assert load_settings(argv, env).api_key.get_secret_value() == OTHER_KEY


def test_a_token_file_flag_beats_the_token_file_variable(
    env: dict[str, str], tmp_path: Path
) -> None:
    """-provision-token-file and PROVISION_TOKEN_FILE both set: the flag's file is read."""
    (tmp_path / "flag").write_text("from-flag-file")
    (tmp_path / "env").write_text("from-env-file")
    env.update(PROVISION_URL=URL, PROVISION_TOKEN_FILE=str(tmp_path / "env"))
    token = load_settings(["-provision-token-file", str(tmp_path / "flag")], env).provision_token
    assert token is not None and token.get_secret_value() == "from-flag-file"


def test_a_token_file_of_two_lines_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    """The one secret-file rule holds for the daemon's token file: one line, never truncated."""
    (tmp_path / "token").write_text("first-line\nsecond-line\n")
    env.update(PROVISION_URL=URL, PROVISION_TOKEN_FILE=str(tmp_path / "token"))
    with pytest.raises(ConfigError, match=r"^PROVISION_TOKEN_FILE file .*must be one line"):
        load_settings([], env)


def test_only_a_key_flag_counts_as_on_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    """key_on_command_line (what makes the daemon re-exec) is true for -apiKey/-apikey only."""
    assert load_settings(["--apikey", OTHER_KEY], env).key_on_command_line
    assert not load_settings([], env).key_on_command_line
    del env["MAAS_API_KEY"]
    (tmp_path / "-odd-name").write_text(KEY)
    env["MAAS_API_KEY_FILE"] = str(tmp_path / "-odd-name")
    assert not load_settings([], env).key_on_command_line

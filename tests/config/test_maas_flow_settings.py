"""maas-flow's settings as maas-flow meant them: a CORD pod's values start the daemon.

`MAAS_API_VERSION=1.0` runs as 2.0, `MAAS_SHOW_API_KEY=true` never shows the key, both with
a warning; `PROVISION_TTL=0s` means no limit; `POWER_HELPER_USER` / `POWER_HELPER_HOST`
become the power helper's first two arguments.
"""

from __future__ import annotations

import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.flags import settings_reference
from maasflow.daemon.settings import load_settings
from tests.config.conftest import KEY, KEY_SECRET_PART


@pytest.mark.parametrize(
    ("args", "variables", "where"),
    [
        (["-apiVersion", "1.0"], {}, "-apiVersion=1.0"),
        (["-apiVersion=1"], {}, "-apiVersion=1"),
        ([], {"MAAS_API_VERSION": "1.0"}, "MAAS_API_VERSION=1.0"),
        ([], {"AUTOMATION_MAAS_API_VERSION": " 1.0 "}, "AUTOMATION_MAAS_API_VERSION=1.0"),
    ],
)
def test_maas_flows_api_version_runs_as_two_with_one_warning(
    env: dict[str, str], args: list[str], variables: dict[str, str], where: str
) -> None:
    """maas-flow's default 1.0 starts the daemon on API 2.0, with one warning naming where."""
    env.update(variables)
    settings = load_settings(args, env)
    assert settings.api_version == "2.0"
    assert settings.warnings == (
        (where, "MAAS 2.0+ has no 1.0 API (it answers 410 Gone); using 2.0"),
    )


def test_api_version_two_gives_no_warning(env: dict[str, str]) -> None:
    """The default and an explicit 2.0 start without any warning."""
    assert load_settings([], env).warnings == ()
    assert load_settings(["-apiVersion", "2.0"], env).warnings == ()


def test_show_api_key_warns_that_the_key_is_never_shown(env: dict[str, str]) -> None:
    """MAAS_SHOW_API_KEY=true is accepted; the warning says why the key stays hidden."""
    env["AUTOMATION_MAAS_SHOW_API_KEY"] = "true"
    settings = load_settings([], env)
    [(setting, text)] = settings.warnings
    assert setting == "MAAS_SHOW_API_KEY=true"
    assert "never shown" in text and "act on MAAS" in text
    shown = f"{settings.warnings} {settings.describe()}"
    assert KEY not in shown and KEY_SECRET_PART not in shown


def test_show_api_key_false_or_unset_is_silent(env: dict[str, str]) -> None:
    """maas-flow's default (false) gives no warning; a non-boolean is refused by name."""
    env["MAAS_SHOW_API_KEY"] = "false"
    assert load_settings([], env).warnings == ()
    env["MAAS_SHOW_API_KEY"] = "perhaps"
    with pytest.raises(ConfigError, match=r"^MAAS_SHOW_API_KEY: 'perhaps' is not a boolean"):
        load_settings([], env)


@pytest.mark.parametrize("value", ["0s", "0", "0m"])
def test_provision_ttl_zero_means_no_limit(env: dict[str, str], value: str) -> None:
    """PROVISION_TTL=0s (a CORD pod's value) is accepted: 0, which the provisioners read as none."""
    env["AUTOMATION_PROVISION_TTL"] = value
    assert load_settings([], env).provision_ttl == 0.0


def test_negative_provision_ttl_is_still_refused(env: dict[str, str]) -> None:
    """Only 0 is special: a negative TTL is one line naming the variable."""
    env["PROVISION_TTL"] = "-1s"
    with pytest.raises(ConfigError, match=r"^PROVISION_TTL: "):
        load_settings([], env)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, ()),
        ({"POWER_HELPER_USER": "vbox", "POWER_HELPER_HOST": "10.1.0.1"}, ("vbox", "10.1.0.1")),
        ({"AUTOMATION_POWER_HELPER_HOST": "vbox.lab"}, ("cord", "vbox.lab")),
        ({"POWER_HELPER_USER": "vbox"}, ("vbox", "127.0.0.1")),
        ({"POWER_HELPER_HOST": "fd00::1"}, ("cord", "fd00::1")),
        ({"POWER_HELPER_USER": "", "POWER_HELPER_HOST": ""}, ()),
    ],
)
def test_power_helper_user_and_host_lead_the_helpers_arguments(
    env: dict[str, str], variables: dict[str, str], expected: tuple[str, ...]
) -> None:
    """Either set: USER HOST go before the MACs (maas-flow's defaults fill in); neither: none."""
    env.update(variables)
    assert load_settings([], env).power_helper_args == expected


def test_power_helper_user_and_host_flags(env: dict[str, str]) -> None:
    """The flags set them too, and win over the variables."""
    env["POWER_HELPER_USER"] = "ignored"
    args = ["-power-helper-user", "ops", "-power-helper-host=192.0.2.9"]
    assert load_settings(args, env).power_helper_args == ("ops", "192.0.2.9")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POWER_HELPER_USER", "-oProxyCommand=sh"),
        ("POWER_HELPER_USER", "a b"),
        ("POWER_HELPER_HOST", "-x"),
        ("POWER_HELPER_HOST", "host;reboot"),
    ],
)
def test_power_helper_user_and_host_that_could_be_options_are_refused(
    env: dict[str, str], variable: str, value: str
) -> None:
    """A value that would reach the helper (and its ssh) as an option is one line, by name."""
    env[variable] = value
    with pytest.raises(ConfigError) as info:
        load_settings([], env)
    assert str(info.value).startswith(f"{variable}: ")


def test_maas_flow_names_are_in_the_reference() -> None:
    """The variables a CORD pod sets are documented settings, not silently ignored names."""
    names = {e for _f, env_names, _d, _h in settings_reference() for e in env_names}
    assert {"MAAS_SHOW_API_KEY", "POWER_HELPER_USER", "POWER_HELPER_HOST"} <= names

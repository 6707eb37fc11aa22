"""Loading the power config file and the service's credentials: valid input and one-line errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from maasflow.common.errors import ConfigError
from maasflow.serve.power_api import (
    add_power_arguments,
    default_state_path,
    power_router_from_args,
)
from maasflow.serve.power_config import (
    DliMachine,
    WolMachine,
    load_power_auth,
    load_power_config,
    normalize_mac,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "power.example.json"
WOL = {"backend": "wol", "mac": "52:54:00:ab:cd:ef"}

Writer = Callable[..., Path]


def test_a_configured_system_id_is_kept_in_lower_case(write_json: Writer) -> None:
    """A system_id written in capitals is MAAS's lower-case id, as `{system_id}` receives it."""
    config = load_power_config(write_json({"machines": {"m": {**WOL, "system_id": "4Y3HA3"}}}))
    assert config.machines["m"].system_id == "4y3ha3"


def test_example_file_loads_with_every_backend() -> None:
    """The shipped power.example.json is valid and uses all three backends."""
    config = load_power_config(EXAMPLE)
    assert {m.backend for m in config.machines.values()} == {"wol", "dli", "command"}
    assert config.find("52:54:00:12:34:57") == "desk2"
    assert config.find("X7BQ3N") == "desk1"


@pytest.mark.parametrize(
    ("text", "mac"),
    [
        ("52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"),
        ("52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"),
        ("525400abcdef", "52:54:00:ab:cd:ef"),
        ("5254.00ab.cdef", "52:54:00:ab:cd:ef"),
        ("52:54-00:ab:cd:ef", None),
        ("52:54:00:ab:cd", None),
        ("desk1", None),
        ("", None),
    ],
)
def test_normalize_mac(text: str, mac: str | None) -> None:
    """MACs in the usual notations normalize to lower-case colons; anything else is None."""
    assert normalize_mac(text) == mac


def test_unknown_key_names_file_and_key(write_json: Writer) -> None:
    """An unknown key is a one-line ConfigError naming the file and the key's path."""
    path = write_json({"machines": {"desk1": {**WOL, "brodcast": "x"}}})
    with pytest.raises(ConfigError) as caught:
        load_power_config(path)
    message = str(caught.value)
    assert str(path) in message and "machines.desk1.brodcast: unknown key" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"machines": {"m": {"backend": "ipmi"}}}, "machines.m"),
        ({"machines": {"m": {"backend": "wol", "mac": "zz"}}}, "not a MAC address"),
        ({"machines": {"m": {"backend": "dli", "address": "h", "outlet": 0}}}, "outlet"),
        (
            {"machines": {"m": {"backend": "command", "on": ["x {ip}"], "off": ["y"]}}},
            "unknown placeholder {ip}",
        ),
        (
            {"machines": {"m": {"backend": "command", "on": ["x"], "off": ["y"], "on_regex": "("}}},
            "invalid regex",
        ),
        ({"machines": {"m": {**WOL, "system_id": "-oProxyCommand=x"}}}, "not a MAAS system_id"),
        ({"machines": {"m": {**WOL, "system_id": "abc 12"}}}, "not a MAAS system_id"),
        ({"machines": {"acks": WOL}}, "reserved"),
        ({"machines": {"a/b": WOL}}, "no '/'"),
        ({"machines": {"a": WOL, "b": WOL}}, "used by both"),
        ({"wol": {"port": 70000}, "machines": {}}, "wol.port"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_configs_are_one_line_config_errors(
    write_json: Writer, data: Any, fragment: str
) -> None:
    """Each kind of mistake is reported as a single-line ConfigError that says what is wrong."""
    with pytest.raises(ConfigError, match=None) as caught:
        load_power_config(write_json(data))
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    """A missing file and a non-JSON file are ConfigErrors naming the path."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_power_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_power_config(bad)


def test_defaults_fill_in_wol_and_dli(write_json: Writer) -> None:
    """Unset WoL and DLI fields take the documented defaults."""
    dli = {"backend": "dli", "address": "10.0.0.5", "outlet": 2}
    config = load_power_config(write_json({"machines": {"w": WOL, "d": dli}}))
    assert (config.wol.broadcast, config.wol.port, config.wol.off_ack_timeout) == (
        "255.255.255.255",
        9,
        900.0,  # MAAS 3.5/3.6's window for one power action: 3 attempts of 5 minutes
    )
    assert isinstance(config.machines["w"], WolMachine)
    machine = config.machines["d"]
    assert isinstance(machine, DliMachine)
    assert (machine.dialect, machine.user, machine.cycle_on) == ("auto", "admin", False)


def test_dli_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DLI password comes from the config, a file, or a named environment variable."""
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    base = {"backend": "dli", "address": "h", "outlet": 1}
    assert DliMachine.model_validate({**base, "password_file": secret}).resolve_password() == (
        "from-file"
    )
    monkeypatch.setenv("DLI_PW", "from-env")
    assert DliMachine.model_validate({**base, "password_env": "DLI_PW"}).resolve_password() == (
        "from-env"
    )
    with pytest.raises(ConfigError, match="DLI_NONE"):
        DliMachine.model_validate({**base, "password_env": "DLI_NONE"}).resolve_password()
    assert "x" not in repr(DliMachine.model_validate({**base, "password": "xxxx"}))


def test_auth_from_files_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Token and password come from files, else from MAASFLOW_POWER_TOKEN / _PASS."""
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    assert load_power_auth(token, None, None).token == "tok-from-file"
    monkeypatch.setenv("MAASFLOW_POWER_TOKEN", "tok-env")
    monkeypatch.setenv("MAASFLOW_POWER_PASS", "pass-env")
    auth = load_power_auth(None, "maas", None)
    assert (auth.token, auth.user, auth.password) == ("tok-env", "maas", "pass-env")


def test_auth_mistakes_are_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user without a password, an empty token file, or a user with ':' are refused."""
    monkeypatch.delenv("MAASFLOW_POWER_PASS", raising=False)
    with pytest.raises(ConfigError, match="go together"):
        load_power_auth(None, "maas", None)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_power_auth(empty, None, None)
    secret = tmp_path / "p"
    secret.write_text("pw")
    with pytest.raises(ConfigError, match="cannot contain ':'"):
        load_power_auth(None, "a:b", secret)


def test_serve_flags_build_a_component(write_json: Writer, tmp_path: Path) -> None:
    """`serve` flags with --power-config yield a component; without it, None."""
    parser = argparse.ArgumentParser()
    add_power_arguments(parser)
    assert power_router_from_args(parser.parse_args([])) is None
    path = write_json({"machines": {"w": WOL}})
    args = parser.parse_args(
        ["--power-config", str(path), "--power-state", str(tmp_path / "s.json")]
    )
    component = power_router_from_args(args)
    assert component is not None
    assert any(getattr(r, "path", "") == "/power/{machine}/on" for r in component.router.routes)


def test_serve_has_no_flag_that_takes_a_secret() -> None:
    """No power flag accepts a token or password on the command line, only files."""
    parser = argparse.ArgumentParser()
    add_power_arguments(parser)
    flags = {flag for action in parser._actions for flag in action.option_strings}
    assert "--power-token-file" in flags and "--power-pass-file" in flags
    assert not flags & {"--power-token", "--power-pass", "--power-password"}


def test_secret_files_follow_the_one_rule(tmp_path: Path) -> None:
    """Token, password and outlet password files: a second line is refused, never dropped."""
    two_lines = tmp_path / "two"
    two_lines.write_text("first-secret\nsecond-secret\n")
    for call in (
        lambda: load_power_auth(two_lines, None, None),
        lambda: load_power_auth(None, "maas", two_lines),
        lambda: DliMachine.model_validate(
            {"backend": "dli", "address": "h", "outlet": 1, "password_file": two_lines}
        ).resolve_password(),
    ):
        with pytest.raises(ConfigError, match="must be one line") as info:
            call()
        assert "first-secret" not in str(info.value) and str(two_lines) in str(info.value)


def test_a_power_token_must_fit_a_bearer_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token with a space, from the file or MAASFLOW_POWER_TOKEN, is refused by name."""
    token = tmp_path / "token"
    token.write_text("two words\n")
    with pytest.raises(ConfigError, match=r"^--power-token-file file .*printable ASCII"):
        load_power_auth(token, None, None)
    monkeypatch.setenv("MAASFLOW_POWER_TOKEN", "two words")
    with pytest.raises(ConfigError, match=r"^MAASFLOW_POWER_TOKEN: .*printable ASCII"):
        load_power_auth(None, None, None)


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {"STATE_DIRECTORY": "/a:/b"}, Path("/a/power-state.json")),
        ([], {"XDG_STATE_HOME": "/x"}, Path("/x/maasflow/power-state.json")),
        ([], {"HOME": "/home/u"}, Path("/home/u/.local/state/maasflow/power-state.json")),
        (["--db", "/srv/serve.sqlite"], {"STATE_DIRECTORY": "/a"}, Path("/srv/power-state.json")),
    ],
)
def test_default_state_path(argv: list[str], env: dict[str, str], expected: Path) -> None:
    """The power state lives beside --db, else in the one state directory serve uses."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    add_power_arguments(parser)
    assert default_state_path(parser.parse_args(argv), env) == expected

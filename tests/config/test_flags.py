"""Go-style flag parsing: forms, bools, help, and one-line errors for bad command lines."""

from __future__ import annotations

import pytest

from maasflow.cli import SUBCOMMANDS, main
from maasflow.common.errors import ConfigError
from maasflow.daemon.flags import OPTIONS, help_requested, help_text, parse_flags
from maasflow.daemon.settings import load_settings

KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"


@pytest.mark.parametrize(
    "argv",
    [
        ["-maas", "http://maas.test:5240/MAAS"],
        ["--maas", "http://maas.test:5240/MAAS"],
        ["-maas=http://maas.test:5240/MAAS"],
        ["--maas=http://maas.test:5240/MAAS"],
        ["-maas", "http://maas.test:5240/MAAS/"],
    ],
)
def test_value_flag_forms(argv: list[str], env: dict[str, str]) -> None:
    """-flag value, --flag value, -flag=value and --flag=value all set the same field."""
    assert load_settings(argv, env).maas_url == "http://maas.test:5240/MAAS"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], False),
        (["-preview"], True),
        (["--preview"], True),
        (["-preview=true"], True),
        (["-preview=false"], False),
        (["-preview=0"], False),
        (["-preview=T"], True),
        (["-preview=no"], False),
    ],
)
def test_bool_flag_forms(argv: list[str], expected: bool, env: dict[str, str]) -> None:
    """Bool flags are true when bare and take Go's =value forms."""
    assert load_settings(argv, env).preview is expected


def test_bool_flag_does_not_swallow_the_next_argument(env: dict[str, str]) -> None:
    """Like Go, `-once false` is not a value: the stray `false` is refused with a hint."""
    with pytest.raises(ConfigError, match=r"-flag=false"):
        load_settings(["-once", "false"], env)


def test_always_rename_can_be_turned_off(env: dict[str, str]) -> None:
    """-always-rename defaults to true and -always-rename=false turns it off."""
    assert load_settings([], env).always_rename is True
    assert load_settings(["-always-rename=false"], env).always_rename is False


def test_both_api_key_spellings(env: dict[str, str]) -> None:
    """-apiKey and maas-flow's older -apikey both set the key."""
    del env["MAAS_API_KEY"]
    for flag in ("-apiKey", "-apikey", "--apikey"):
        settings = load_settings([flag, KEY], env)
        assert settings.api_key.get_secret_value() == KEY
        assert settings.api_key_origin == "-" + flag.lstrip("-")


def test_last_repeated_flag_wins(env: dict[str, str]) -> None:
    """A flag given twice takes its last value, as Go's flag package does."""
    assert load_settings(["-period", "5s", "-period", "7s"], env).period == 7.0


def test_value_may_contain_equals(env: dict[str, str]) -> None:
    """Only the first `=` splits a flag from its value."""
    settings = load_settings(['-filter={"hosts":{"include":["a=b"]}}'], env)
    assert settings.filter.to_json() == {"hosts": {"include": ["a=b"]}}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["-nope"], "unknown flag -nope; run 'maasflow -h'"),
        (["--apiKye=" + KEY], "unknown flag -apiKye;"),
        (["-maas"], "flag -maas needs a value"),
        (["stray"], "unexpected argument 1 'stray'"),
        (["---maas", "x"], "unexpected argument 1"),
        (["-"], "unexpected argument 1"),
        (["-=x"], "unexpected argument 1"),
        (["--", "x"], "unexpected argument 'x' after --"),
        (["-preview=maybe"], "-preview: 'maybe' is not a boolean"),
    ],
)
def test_bad_command_lines(argv: list[str], fragment: str, env: dict[str, str]) -> None:
    """Each bad command line is one ConfigError line naming the offending flag or argument."""
    with pytest.raises(ConfigError) as info:
        load_settings(argv, env)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_flag_never_echoes_its_value(env: dict[str, str]) -> None:
    """A mistyped key flag is named without the key that followed its `=`."""
    with pytest.raises(ConfigError) as info:
        load_settings(["-apiKye=" + KEY], env)
    assert "cccc" not in str(info.value)


def test_positional_key_is_not_echoed(env: dict[str, str]) -> None:
    """A stray argument that looks like a key is reported by position only."""
    with pytest.raises(ConfigError) as info:
        load_settings([KEY], env)
    assert "cccc" not in str(info.value)
    assert "argument 1" in str(info.value)


@pytest.mark.parametrize("flag", ["-h", "-help", "--help"])
def test_help_prints_and_exits_zero(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    """-h prints every flag to stdout and exits with status 0."""
    with pytest.raises(SystemExit) as info:
        load_settings([flag], {})
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "-apiKey" in out and "MAAS_QUERY_INTERVAL" in out and "process listings" in out


def test_help_wins_over_a_bad_flag_after_it(capsys: pytest.CaptureFixture[str]) -> None:
    """`-h` is handled when reached, before later flags are looked at."""
    with pytest.raises(SystemExit):
        parse_flags(["-h", "-nope"])
    assert "usage: maasflow" in capsys.readouterr().out


def test_help_lists_every_flag() -> None:
    """Every flag name of every option appears in the help text."""
    text = help_text()
    for option in OPTIONS:
        for name in option.flags:
            assert f"-{name}" in text
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["-once", "-help"]])
def test_maasflow_help_lists_the_sub_commands_then_the_flags(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`maasflow --help` names every sub-command with what it does, then the daemon's flags."""
    assert main(args) == 0
    out = capsys.readouterr().out
    for name, (_module, text) in SUBCOMMANDS.items():
        assert f"  {name}  " in out and text in out
    assert out.index("sub-commands:") < out.index("-apiKey")


def test_help_is_found_where_gos_parser_would_find_it() -> None:
    """A -h that is a flag's value, follows `--`, or follows a bad flag is not a help request."""
    assert help_requested(["-once", "--help"])
    assert not help_requested(["-filter", "-h"])
    assert not help_requested(["--", "-h"])
    assert not help_requested(["-nope", "-h"])
    assert not help_requested([])

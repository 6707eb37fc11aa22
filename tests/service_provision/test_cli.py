"""`maasflow serve` flags: defaults, the db location, and one-line errors for bad input."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from maasflow.cli import main as maasflow_main
from maasflow.common.errors import ConfigError
from maasflow.serve.app import ServiceConfig
from maasflow.serve.cli import build_parser, config_from_args, default_db_path
from maasflow.serve.server import listen_socket


def config_for(*argv: str) -> ServiceConfig:
    """The ServiceConfig that `maasflow serve <argv>` would run with."""
    return config_from_args(build_parser().parse_args(list(argv)), env={})


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """An executable script."""
    path = tmp_path / "provision.sh"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_defaults(script: Path) -> None:
    """Defaults: 5 workers, 1 h timeout, 100 queued, role compute, port 9420 on 127.0.0.1."""
    args = build_parser().parse_args(["--script", str(script)])
    config = config_from_args(args, env={"STATE_DIRECTORY": "/var/lib/maasflow"})
    assert (args.host, args.port) == ("127.0.0.1", 9420)
    assert (config.workers, config.job_timeout, config.queue_limit) == (5, 3600.0, 100)
    assert config.default_role == "compute" and config.script == script
    assert config.db == Path("/var/lib/maasflow/serve.sqlite")


def test_role_and_allowed_scripts_are_parsed(script: Path) -> None:
    """--role-script and --allow-script give NAME → absolute path maps."""
    config = config_for("--role-script", f"storage={script}", "--allow-script", f"wipe={script}")
    assert dict(config.role_scripts) == {"storage": script}
    assert dict(config.allowed_scripts) == {"storage": script, "wipe": script}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STATE_DIRECTORY": "/a:/b"}, Path("/a/serve.sqlite")),
        ({"XDG_STATE_HOME": "/x"}, Path("/x/maasflow/serve.sqlite")),
        ({}, Path.home() / ".local/state/maasflow/serve.sqlite"),
    ],
)
def test_default_db_path(env: dict[str, str], expected: Path) -> None:
    """The db defaults to $STATE_DIRECTORY, else the XDG state home."""
    assert default_db_path(env) == expected


BAD_FLAGS = [
    ("--workers", "0"),
    ("--workers", "many"),
    ("--queue-limit", "0"),
    ("--job-timeout", "0"),
    ("--port", "70000"),
    ("--script", "/nonexistent/provision"),
    ("--script", "{not executable}"),
    ("--role-script", "storage"),
    ("--role-script", "st/orage=/bin/true"),
    ("--role-script", "storage=/nonexistent"),
    ("--allow-script", "=/bin/true"),
    ("--default-role", "a b"),
    ("--role-selector-url", "ftp://example/role"),
    ("--role-selector-url", "http://"),
    ("--tls-cert", "/nonexistent.pem"),
    ("--no-such-flag", "x"),
]


@pytest.mark.parametrize("flag", BAD_FLAGS, ids=[" ".join(f) for f in BAD_FLAGS])
def test_bad_flags_are_config_errors(flag: tuple[str, str], tmp_path: Path) -> None:
    """Each bad flag is a ConfigError whose one-line message names the flag."""
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        config_for(flag[0], flag[1].replace("{not executable}", str(plain)))
    message = str(caught.value)
    assert "\n" not in message and flag[0].lstrip("-").split("-")[0] in message


def test_conflicting_script_names_are_a_config_error(script: Path, tmp_path: Path) -> None:
    """One name given two different scripts is refused."""
    other = tmp_path / "other.sh"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    with pytest.raises(ConfigError, match="already given another path"):
        config_for("--role-script", f"x={script}", "--allow-script", f"x={other}")


def test_tls_cert_without_key_is_a_config_error(script: Path) -> None:
    """--tls-cert needs --tls-key."""
    with pytest.raises(ConfigError, match="give both or neither"):
        config_for("--tls-cert", str(script))


def test_maasflow_serve_bad_flag_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`maasflow serve --workers 0` prints one line on stderr and exits 2, no traceback."""
    assert maasflow_main(["serve", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--workers" in err and "Traceback" not in err


def test_port_in_use_is_a_config_error() -> None:
    """Listening on a port already taken is a ConfigError naming host and port."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(ConfigError, match="--port"):
            listen_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


@pytest.mark.parametrize(
    ("value", "seconds"), [("3600", 3600.0), ("90m", 5400.0), ("1h30m", 5400.0), ("2.5", 2.5)]
)
def test_job_timeout_is_a_duration(value: str, seconds: float) -> None:
    """--job-timeout takes the daemon's duration syntax; a bare number is still seconds."""
    assert config_for("--job-timeout", value).job_timeout == seconds


def test_a_bad_job_timeout_names_the_flag_and_the_syntax() -> None:
    """`--job-timeout soon` is one line naming the flag and how a duration is written."""
    with pytest.raises(ConfigError) as caught:
        config_for("--job-timeout", "soon")
    message = str(caught.value)
    assert "--job-timeout" in message and "15s, 1m30s" in message and "\n" not in message

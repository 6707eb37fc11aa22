"""`maasflow sim`: prints URL and key, serves until SIGTERM, bad flags are one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from maasflow import cli as top
from maasflow.common.errors import ConfigError
from maasflow.sim import cli
from tests.sim.helpers import OAuth


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["--machines", "lots"],
        ["--machines", "-1"],
        ["--time-factor", "0"],
        ["--error-500-rate", "2"],
        ["--drop-rate", "0.6", "--error-503-rate", "0.6"],
        ["--drop-after-rate", "1.5"],
        ["--port", "70000"],
        ["--scenario", "huge"],
        ["--latency", "soon"],
        ["--latency", "-5ms"],
        ["--retry-after-503", "1.5s"],
        ["--retry-after-409", "-1"],
    ],
)
def test_bad_flags_raise_config_error(argv: list[str]) -> None:
    """Each bad flag value is a ConfigError naming the problem, before anything starts."""
    with pytest.raises(ConfigError) as caught:
        cli.main(argv)
    assert "\n" not in str(caught.value)


def test_drop_after_rate_flag_reaches_the_faults() -> None:
    """--drop-after-rate sets the drop_after_rate knob, next to --drop-rate."""
    args = cli.build_parser().parse_args(["--drop-rate", "0.1", "--drop-after-rate", "0.2"])
    faults = cli.config_from(args).faults
    assert (faults.drop_rate, faults.drop_after_rate) == (0.1, 0.2)


@pytest.mark.parametrize(
    ("argv", "latency_ms", "retry_503", "retry_409"),
    [
        (["--latency", "50ms", "--retry-after-503", "1m", "--retry-after-409", "7"], 50, 60, 7),
        (["--latency-ms", "20", "--retry-after-503", "10s"], 20, 10, 5),
        (["--latency", "0.25"], 250, 10, 5),
    ],
)
def test_fault_durations_take_the_shared_syntax(
    argv: list[str], latency_ms: float, retry_503: int, retry_409: int
) -> None:
    """--latency and --retry-after-* read Go durations or seconds; --latency-ms keeps its ms."""
    faults = cli.config_from(cli.build_parser().parse_args(argv)).faults
    assert faults.latency_ms == pytest.approx(latency_ms)
    assert (faults.retry_after_503, faults.retry_after_409) == (retry_503, retry_409)


def test_bad_admin_key_is_config_error() -> None:
    """An admin key without three parts is refused with a hint."""
    with pytest.raises(ConfigError, match="consumer:token:secret"):
        cli.main(["--port", "0", "--admin-key", "just-one-part"])


def test_port_in_use_is_config_error() -> None:
    """A port that cannot be bound is a ConfigError suggesting another --port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="--port"):
            cli.main(["--port", str(port), "--machines", "1"])


def test_top_level_cli_turns_bad_flag_into_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Through `maasflow sim`, a bad flag is exit status 2 and one line on stderr."""
    assert top.main(["sim", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("maasflow: sim:")


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [(["--log-level", "loud"], {}, "--log-level"), ([], {"LOG_FORMAT": "xml"}, "LOG_FORMAT")],
)
def test_the_simulator_takes_the_shared_log_options(
    argv: list[str], env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its log level and format are resolved like serve's and the daemon's: flag, then
    LOG_LEVEL/LOG_FORMAT; a bad one is a ConfigError naming it, before anything listens."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{named}: log"):
        cli.main(["--port", "0", *argv])


def test_runs_prints_url_and_key_and_stops_on_sigterm() -> None:
    """The process announces its URL and admin key, answers, and exits 0 on SIGTERM."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "maasflow", "sim", "--port", "0", "--machines", "3"]
    argv += ["--seed", "4", "--time-factor", "0.01"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            key = process.stdout.readline().split()[-1]
            assert url.startswith("http://127.0.0.1:") and url.endswith("/MAAS")
            listing = httpx.get(url + "/api/2.0/machines/", auth=OAuth(key), timeout=5)
            hostnames = [m["hostname"] for m in listing.json()]
            assert hostnames == ["node-0001", "node-0002", "node-0003"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

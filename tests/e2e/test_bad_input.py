"""End to end: bad input is one line on stderr and exit 2; a key MAAS refuses is exit 1.

The real CLI in a subprocess, so what is checked is what a user sees: the exit status, a
single stderr line naming the input (no traceback), and never the API key, neither in the
configuration errors nor when MAAS answers 401 to a well-formed key it does not know.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maasflow.sim import SimConfig, generate_machines
from tests.e2e.conftest import DaemonFactory, SimFactory
from tests.e2e.helpers import base_env, key_free, run_cli

KEY = "Xconsumer9e:Ytoken12345q:Zsecret987654321w"  # well formed, known to nobody
CLOSED = "http://127.0.0.1:9/MAAS"  # discard port: nothing answers there

# (case id, extra args, MAAS_API_KEY, words the one line must contain)
CASES = [
    ("bad-json", ["-filter", '{"hosts":'], KEY, ["-filter", "JSON"]),
    ("bad-regex", ["-filter", '{"hosts": {"include": ["("]}}'], KEY, ["-filter", "'('"]),
    ("unknown-key", ["-filter", '{"hostz": {}}'], KEY, ["-filter", "hostz"]),
    ("non-list", ["-filter", '{"hosts": {"include": "^a"}}'], KEY, ["-filter", "include"]),
    ("missing-file", ["-filter", "@/nonexistent/filter.json"], KEY, ["/nonexistent/filter.json"]),
    ("bad-mappings", ["-mappings", "[1, 2]"], KEY, ["-mappings"]),
    ("bad-target", ["-targets", '[{}, {"target": "Up"}]'], KEY, ["-targets", "rule 2", "target"]),
    ("targets-field", ["-targets", '[{"power": "of"}]'], KEY, ["-targets", "rule 1", "power"]),
    ("targets-file", ["-targets", "@/nonexistent/t.json"], KEY, ["/nonexistent/t.json"]),
    ("malformed-key", [], "abcSECRETxyz", ["MAAS_API_KEY", "colon-separated"]),
    ("two-part-key", [], "abc:SECRETxyz", ["MAAS_API_KEY", "colon-separated"]),
    ("api-1.5", ["-apiVersion", "1.5"], KEY, ["-apiVersion", "410"]),
    ("negative-ttl", ["-provision-ttl", "-5s"], KEY, ["-provision-ttl", "-5s"]),
    (
        "helper-user-option",
        ["-power-helper-user", "-oProxyCommand=x"],
        KEY,
        ["-power-helper-user", "user name"],
    ),
    ("unknown-flag", ["-frobnicate"], KEY, ["-frobnicate"]),
    ("bad-period", ["-period", "soon"], KEY, ["-period", "soon"]),
]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "key", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_exits_2_with_one_line_naming_it(
    home: Path, args: list[str], key: str, words: list[str]
) -> None:
    """A bad flag, filter, regex, file, key or API version: exit 2, one line, no key shown."""
    result = run_cli(
        ["-once", "-listen", "", "-maas", CLOSED, *args], base_env(home, MAAS_API_KEY=key)
    )
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert all(word in line for word in words), line
    assert key_free(result.stdout + result.stderr, key)


def test_maas_flows_settings_start_instead_of_exiting_2(home: Path) -> None:
    """API 1.0 and PROVISION_TTL=0s pass the start-up checks: MAAS, not config, ends the run."""
    env = base_env(home, MAAS_API_KEY=KEY, MAAS_API_VERSION="1.0", PROVISION_TTL="0s")
    result = run_cli(["-preview", "-listen", "", "-maas", CLOSED], env)
    assert result.returncode == 1, result.stderr
    assert "no response" in result.stderr and "MAAS 2.0+ has no 1.0 API" in result.stderr
    assert key_free(result.stdout + result.stderr, KEY)


def test_a_bad_filter_file_is_named_in_the_error(home: Path, tmp_path: Path) -> None:
    """A filter file with a bad regex: the line names the file and the pattern."""
    path = tmp_path / "filter.json"
    path.write_text(json.dumps({"zones": {"exclude": ["[z"]}}))
    result = run_cli(
        ["-once", "-listen", "", "-maas", CLOSED, "-filter", f"@{path}"],
        base_env(home, MAAS_API_KEY=KEY),
    )
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert str(path) in line and "[z" in line


def test_a_key_on_the_command_line_is_checked_and_never_shown(home: Path) -> None:
    """`-apiKey` with a malformed key: exit 2, and the key shows neither in output nor error."""
    secret = "abcSECRETxyz"
    result = run_cli(["-once", "-listen", "", "-maas", CLOSED, "-apiKey", secret], base_env(home))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "-apiKey" in line and "colon-separated" in line
    assert secret not in result.stdout + result.stderr


def test_a_key_given_as_a_flag_leaves_the_process_listing(
    start_sim: SimFactory, start_daemon: DaemonFactory, home: Path
) -> None:
    """maas-flow's `-apiKey KEY` works, but once running the key is not in /proc/PID/cmdline."""
    sim = start_sim(SimConfig(machines=generate_machines(2)))
    daemon = start_daemon(
        [
            "-maas",
            sim.url,
            "-listen",
            "127.0.0.1:0",
            "-log-format",
            "json",
            "-apiKey",
            sim.admin_key,
        ],
        base_env(home),
    )
    daemon.telemetry_url()  # running, and past its own re-exec
    cmdline = Path(f"/proc/{daemon.proc.pid}/cmdline").read_bytes().decode()
    assert sim.admin_key not in cmdline
    assert "-apiKey" not in cmdline
    assert daemon.terminate() == 0
    assert key_free(daemon.output(), sim.admin_key)


@pytest.mark.parametrize("via_flag", [False, True], ids=["env", "flag"])
def test_a_key_maas_rejects_exits_1_with_a_clear_message(
    start_sim: SimFactory, home: Path, via_flag: bool
) -> None:
    """-once with a well-formed key the simulator does not know: 401 → exit 1, key never shown."""
    sim = start_sim(SimConfig(machines=generate_machines(2)))
    args = ["-once", "-listen", "", "-maas", sim.url]
    env = base_env(home) if via_flag else base_env(home, MAAS_API_KEY=KEY)
    result = run_cli([*args, "-apiKey", KEY] if via_flag else args, env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "401" in last and "API key" in last
    assert key_free(result.stdout + result.stderr, KEY)
    assert [r.status for r in sim.request_log] == [401]

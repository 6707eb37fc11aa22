"""`maasflow status` against a live telemetry endpoint (real HTTP) and against the store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from maasflow import cli
from maasflow.common.errors import ConfigError
from maasflow.daemon import report as status
from maasflow.daemon.metrics import Metrics
from maasflow.daemon.retry_budget import Recovery
from maasflow.daemon.setbacks import Setback
from maasflow.daemon.store import Store
from maasflow.daemon.telemetry import Health, build_telemetry_app, serve_telemetry

NOW = 1_700_000_000.0


async def _status(argv: list[str]) -> int:
    """Run the command in a thread: the endpoint it queries is served by this test's loop."""
    return await asyncio.to_thread(status.main, argv)


def _lines(out: str) -> list[str]:
    return out.rstrip("\n").splitlines()


async def test_table_shows_one_aligned_row_per_machine(
    telemetry_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table has a summary, a header and the machines sorted by hostname, with ages."""
    assert await _status(["--url", telemetry_url]) == 0
    summary, header, *rows = _lines(capsys.readouterr().out)
    assert summary.startswith("3 machines; MAAS http://127.0.0.1:5240/MAAS; passes 42")
    assert header.split() == [
        "HOSTNAME", "SYSTEM_ID", "ZONE", "MAAS", "STATUS", "PHASE", "DESIRED", "REASON", "LAST",
        "ACTION",
        "WHEN", "ATTEMPTS", "BACKOFF", "LAST", "ERROR",
    ]  # fmt: skip
    assert [r.split()[0] for r in rows] == ["node-a", "node-b", "web-1"]
    assert rows[1].split()[:5] == ["node-b", "abc123", "default", "Deployed", "provisioning"]
    reason = header.index("REASON")
    assert rows[1][reason:].split()[:7] == [
        "provisioning", "in", "progress", "provision", "3m", "ago", "2"
    ]  # fmt: skip
    assert rows[0][header.index("WHEN") :].split()[:2] == ["12s", "ago"]
    assert header.index("WHEN") == rows[0].index("12s") == rows[1].index("3m ago")


def test_the_summary_names_the_leader_of_several_daemons() -> None:
    """With several daemons on one database, the summary says this one's role and who leads."""
    doc = {
        "generated_at": NOW, "maas_url": "http://m/MAAS", "machines": [],
        "leadership": {"role": "standby", "leader": "host-a:4242 (epoch 3)", "epoch": None},
    }  # fmt: skip
    summary = status.render_table(doc).splitlines()[0]
    assert summary.endswith("; this daemon: standby; leader host-a:4242 (epoch 3)")


async def test_long_errors_are_truncated_and_missing_values_dashed(
    telemetry_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 200-character error is cut to 60 with an ellipsis; unknown values show as '-'."""
    await _status(["--url", telemetry_url])
    header, *rows = _lines(capsys.readouterr().out)[1:]
    error = rows[1][header.index("LAST ERROR") :].strip()
    assert error.startswith("exit 1: xxx") and error.endswith("…") and len(error) == 60
    assert rows[2].split()[5:] == ["-", "-", "-", "-", "0", "-", "-"]  # DESIRED: "-" too


async def test_json_output_is_the_state_document(
    telemetry_url: str, snapshot_doc: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the daemon's /state document unchanged, for scripts."""
    assert await _status(["--url", telemetry_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == snapshot_doc


async def test_host_regex_filters_by_hostname_search(
    telemetry_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--host keeps machines whose hostname contains a match (unanchored, like the filters)."""
    await _status(["--url", telemetry_url, "--json", "--host", "node-[ab]$"])
    machines = json.loads(capsys.readouterr().out)["machines"]
    assert sorted(m["hostname"] for m in machines) == ["node-a", "node-b"]


async def test_url_comes_from_the_environment(
    telemetry_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MAASFLOW_STATUS_URL replaces the default URL (a trailing /state is accepted)."""
    monkeypatch.setenv("MAASFLOW_STATUS_URL", f"{telemetry_url}/state")
    assert await _status(["--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["machines"]) == 3


async def test_control_characters_from_maas_cannot_reach_the_terminal(
    telemetry_url: str, snapshot_doc: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """An escape sequence in a hostname or error is shown escaped (visible, inert) in the table."""
    snapshot_doc["machines"][0]["hostname"] = "evil\x1b[2J\x07"
    snapshot_doc["machines"][0]["last_error"] = "line1\nline2\r"
    await _status(["--url", telemetry_url])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "evil\\x1b[2J\\x07" in out and "line1\\nline2\\r" in out


async def test_bidirectional_characters_from_maas_are_escaped_in_the_status_table(
    telemetry_url: str, snapshot_doc: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A right-to-left override or isolate in a hostname cannot make the table read backwards."""
    snapshot_doc["machines"][0]["hostname"] = "web\u202e1gol\u2066x\u2069\u200f"
    snapshot_doc["machines"][0]["last_error"] = "quota\u2028forged line"
    await _status(["--url", telemetry_url])
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\u202e\u2066\u2069\u200f\u2028")
    assert "web\\u202e1gol\\u2066x\\u2069\\u200f" in out
    assert "quota\\u2028forged line" in out


def test_bad_regex_is_a_config_error() -> None:
    """An invalid --host regex raises ConfigError naming the flag (before any request)."""
    with pytest.raises(ConfigError, match="--host"):
        status.main(["--host", "node-(", "--url", "http://127.0.0.1:1"])


def test_bad_input_exits_2_with_one_line_through_the_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through `maasflow status`, bad input (regex, flag, URL) is one stderr line and exit 2."""
    for argv in (["--host", "("], ["--bogus"], ["--url", "ftp://x"]):
        assert cli.main(["status", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("maasflow: ")


def test_unreachable_daemon_exits_1_naming_the_url_and_the_fix(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening: exit 1, one line naming the URL and asking about -listen."""
    url = f"http://127.0.0.1:{closed_port}"
    assert status.main(["--url", url, "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"{url}/state" in err and "-listen" in err


async def test_an_endpoint_that_is_not_maasflow_exits_1(
    health: Health, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server answering 404 or non-state JSON is reported in one line, exit 1."""
    app = build_telemetry_app(health, Metrics(), lambda: {"hello": "world"})
    async with serve_telemetry(app, "127.0.0.1:0") as url:
        assert await _status(["--url", f"{url}/nope"]) == 1
        assert await _status(["--url", url]) == 1
    first, second = _lines(capsys.readouterr().err)
    assert "HTTP 404" in first and "without a machines list" in second


async def test_healthz_flag_exits_by_health(
    telemetry_url: str, health: Health, capsys: pytest.CaptureFixture[str]
) -> None:
    """--healthz (the container HEALTHCHECK) exits 1 with the reason, then 0 once healthy."""
    unhealthy = await _status(["--url", telemetry_url, "--healthz"])
    health.pass_ok()
    healthy = await _status(["--url", telemetry_url, "--healthz"])
    assert (unhealthy, healthy) == (1, 0)
    assert _lines(capsys.readouterr().out) == ["unhealthy: starting", "ok"]


# -- --db: the daemon's SQLite store ------------------------------------------------------


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    """A store written by maasflow.daemon.store: one running, one failed provisioning record."""
    path = tmp_path / "state" / "maasflow.sqlite"
    store = Store(path, clock=lambda: NOW)
    store.start("abc123", "node-b", "script")
    store.start("def456", "node-a", "url")
    store.fail("def456", "HTTP 500 from provisioner", "", NOW + 60)
    store.close()
    return path


def test_db_lists_provisioning_records(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--db reads the store's provision table: phase, action, attempts and error per machine."""
    assert status.main(["--db", str(store_file), "--json"]) == 0
    machines = {m["system_id"]: m for m in json.loads(capsys.readouterr().out)["machines"]}
    assert machines["abc123"]["phase"] == "provisioning"
    assert machines["abc123"]["last_action"] == "provision (script)"
    assert machines["def456"]["phase"] == "provision failed"
    assert machines["def456"]["last_error"] == "HTTP 500 from provisioner"
    assert machines["def456"]["attempts"] == 1


def test_db_table_and_filter(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table works from the store too, and --host filters it."""
    assert status.main(["--db", str(store_file), "--host", "^node-a$"]) == 0
    summary, _header, *rows = _lines(capsys.readouterr().out)
    assert summary.startswith("1 machine; MAAS ") and str(store_file) in summary
    assert [r.split()[0] for r in rows] == ["node-a"]


def test_db_is_opened_read_only(store_file: Path) -> None:
    """Reading the store never writes it (the daemon owns it)."""
    before = store_file.read_bytes()
    status.main(["--db", str(store_file)])
    assert store_file.read_bytes() == before


def test_missing_db_is_a_config_error(tmp_path: Path) -> None:
    """A --db path that does not exist is a one-line ConfigError, not a new empty database."""
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(ConfigError, match="no such file"):
        status.main(["--db", str(missing)])
    assert not missing.exists()


@pytest.mark.parametrize("content", ["table", "garbage"])
def test_a_db_that_is_not_the_store_is_a_config_error(tmp_path: Path, content: str) -> None:
    """A SQLite file without the provision table, or not SQLite at all, is a ConfigError."""
    path = tmp_path / "other.sqlite"
    if content == "garbage":
        path.write_bytes(b"not a database" * 100)
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE other (x)")
    with pytest.raises(ConfigError, match="--db") as caught:
        status.main(["--db", str(path)])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s ago"), (59, "59s ago"), (60, "1m ago"), (3599, "59m ago"), (7200, "2h ago"),
     (3 * 86400, "3d ago"), (-30, "0s ago")],
)  # fmt: skip
def test_ages_are_short_and_human(seconds: int, shown: str) -> None:
    """ago() rounds down to the largest unit; a future time shows as 0s."""
    assert status.ago(NOW - seconds, NOW) == shown


def test_unknown_age_is_a_dash() -> None:
    """No timestamp, no age."""
    assert status.ago(None, NOW) == "-"


def test_db_shows_setbacks_and_quarantines(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--db folds in the setback and retry-count tables: a backing-off action, its failures
    and next try, the retries spent, and quarantined machines' phase."""
    store = Store(store_file, clock=lambda: NOW)
    store.save_setback(Setback("abc123", "deploy", 3, NOW + 120, "HTTP 503: address exhaustion"))
    store.save_recovery(Recovery("zzz999", 2, quarantined=True))
    store.close()
    assert status.main(["--db", str(store_file), "--json"]) == 0
    machines = {m["system_id"]: m for m in json.loads(capsys.readouterr().out)["machines"]}
    backing = machines["abc123"]
    assert (backing["backoff_action"], backing["backoff_failures"]) == ("deploy", 3)
    assert backing["backoff_until"] == NOW + 120
    assert (machines["zzz999"]["phase"], machines["zzz999"]["retries"]) == ("quarantined", 2)
    cell = status.backoff_cell(backing, NOW)
    assert cell == "deploy x3, next in 2m"
    assert status.backoff_cell(machines["zzz999"], NOW) == "retried 2x"


def test_db_from_before_the_setback_tables_still_reads(tmp_path: Path) -> None:
    """A state file of schema version 1 (no setback/recovery tables) shows its records."""
    path = tmp_path / "old.sqlite"
    raw = sqlite3.connect(path)
    raw.execute(
        "CREATE TABLE provision (system_id TEXT PRIMARY KEY, state TEXT, mode TEXT,"
        " attempts INTEGER, started_at REAL, updated_at REAL, finished_at REAL,"
        " next_attempt_at REAL, last_error TEXT, output_tail TEXT, hostname TEXT)"
    )
    raw.execute("INSERT INTO provision VALUES ('a', 'complete', 'script', 1, 0, 0, 0, NULL,"
                " '', '', 'n')")  # fmt: skip
    raw.commit()
    raw.close()
    doc = status.read_store(str(path))
    assert [(m["system_id"], m["phase"]) for m in doc["machines"]] == [("a", "provisioned")]

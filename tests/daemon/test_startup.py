"""Start-up: the daemon identifies to MAAS before any pass, retrying only what may heal.

A key MAAS rejects (401) is reported in health and retried with capped backoff until MAAS
accepts it, then passes start; an answer waiting cannot change (the URL is not MAAS's API)
ends the daemon with exit 1 and one clear line. Time is a fake clock: no test waits for it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.errors import NotFound, TemporaryMaasError, Unauthorized
from maasflow.daemon.cli import run_identified
from maasflow.daemon.loop import BACKOFF_CAP_S

WHOAMI = "users/?op=whoami"
KEY = "Xconsumer9e:Ytoken12345q:Zsecret987654321w"


def rejected() -> Unauthorized:
    return Unauthorized("GET", WHOAMI, 401, "Authorization Error: 'Expired timestamp'")


def names(fake: Any) -> list[str]:
    return [name for _, name, _ in fake.calls]


async def test_a_rejected_key_is_retried_with_capped_backoff_until_maas_accepts_it(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """Three 401s: three waits doubling up to the cap, then identity and the first pass."""
    fake = Fake([mk("a", 4)])
    fake.whoami_errors = [rejected() for _ in range(3)]
    clock = FakeClock()
    daemon = make_daemon(fake, period=100.0, clock=clock, rand=lambda: 1.0)
    stop = asyncio.Event()
    await asyncio.wait_for(run_identified(daemon, stop, on_pass=stop.set), timeout=5)
    assert names(fake) == ["whoami"] * 4 + ["list", "allocate"]
    assert clock.slept == [100.0, 200.0, BACKOFF_CAP_S]
    assert daemon.me == "maasflow" and daemon.passes == 1
    await daemon.executor.drain(1)


async def test_a_rejected_key_is_reported_in_health_until_a_pass_succeeds(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """/healthz names the rejected key while identify retries, and is ok after a good pass."""
    fake = Fake([])
    fake.whoami_errors = [rejected()]
    daemon = make_daemon(fake)
    with capture_logs() as logs:
        assert await asyncio.wait_for(daemon.identify(), timeout=5) == "maasflow"
    ok, reason = daemon.health.check()
    assert not ok and "API key rejected by MAAS" in reason
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "cannot identify to MAAS; retrying"
    ]
    await daemon.run_pass()
    assert daemon.health.check(daemon.clock.time()) == (True, "ok")


async def test_an_unreachable_maas_at_start_up_is_waited_for(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """No answer at all (MAAS restarting) is retried like a rejected key."""
    fake = Fake([])
    fake.whoami_errors = [TemporaryMaasError("GET", WHOAMI, None, "connection refused")]
    daemon = make_daemon(fake)
    assert await asyncio.wait_for(daemon.identify(), timeout=5) == "maasflow"
    assert names(fake) == ["whoami", "whoami"]


async def test_no_pass_starts_when_maas_refuses_identity_for_good(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """A 404 to who-am-I (the URL is not MAAS's API) is raised with a hint; nothing is listed."""
    fake = Fake([mk("a", 4)])
    fake.whoami_errors = [NotFound("GET", WHOAMI, 404, "Not Found")]
    daemon = make_daemon(fake)
    stop = asyncio.Event()
    with pytest.raises(NotFound, match=r"check the MAAS URL \(-maas, MAAS_URL\)"):
        await asyncio.wait_for(run_identified(daemon, stop, on_pass=stop.set), timeout=5)
    assert names(fake) == ["whoami"]
    assert daemon.passes == 0


async def test_a_stop_during_identify_ends_without_a_pass(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """SIGTERM while the key is still being retried: no listing, no error."""
    fake = Fake([mk("a", 4)])
    fake.whoami_errors = [rejected() for _ in range(1000)]
    daemon = make_daemon(fake)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(run_identified(daemon, stop), timeout=5)
    assert "list" not in names(fake)


class NotMaas(BaseHTTPRequestHandler):
    """A web server that is not MAAS: 404 for every path."""

    def do_GET(self) -> None:
        body = b"Not Found"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def not_maas() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotMaas)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/MAAS"
    server.shutdown()
    server.server_close()


def test_the_daemon_exits_1_with_one_clear_line_when_the_url_is_not_maas(
    not_maas: str, tmp_path: Path
) -> None:
    """The long-running daemon (no -once) gives up on a 404 to who-am-I: exit 1, URL named."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "MAAS_API_KEY": KEY,
    }
    result = subprocess.run(
        [sys.executable, "-m", "maasflow", "-maas", not_maas, "-listen", ""],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "404" in last and "check the MAAS URL" in last, last
    assert "Traceback" not in result.stderr
    assert KEY.split(":")[2] not in result.stdout + result.stderr

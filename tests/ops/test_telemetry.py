"""Health rules, and the /healthz, /metrics, /state endpoint served over real loopback HTTP."""

from __future__ import annotations

import signal
import socket
from typing import Any

import httpx
import pytest

from maasflow.common.errors import ConfigError
from maasflow.daemon.metrics import Metrics
from maasflow.daemon.telemetry import Health, build_telemetry_app, parse_listen, serve_telemetry

PERIOD = 10.0
T0 = 1000.0


def _health() -> Health:
    return Health(PERIOD, started_at=T0, clock=lambda: T0)


# -- Health: state in, one event, verdict out ------------------------------------------------


def test_before_the_first_pass_it_is_starting() -> None:
    """Right after start-up, with no pass yet, health is 503 "starting"."""
    assert _health().check(T0 + 1) == (False, "starting")


def test_a_recent_successful_pass_is_healthy() -> None:
    """A pass that succeeded within three periods makes health ok."""
    health = _health()
    health.pass_ok(T0 + 5)
    assert health.check(T0 + 5 + 3 * PERIOD) == (True, "ok")


def test_a_failure_inside_the_window_does_not_flip_health() -> None:
    """One failed pass right after a success stays healthy: three periods of grace."""
    health = _health()
    health.pass_ok(T0)
    health.pass_failed("MAAS unreachable: connection refused", T0 + PERIOD)
    assert health.check(T0 + 2 * PERIOD) == (True, "ok")


def test_failures_past_the_window_report_their_reason() -> None:
    """No success for three periods and a failing last pass: 503 with that pass's reason."""
    health = _health()
    health.pass_ok(T0)
    health.pass_failed("MAAS unreachable: connection refused", T0 + 3 * PERIOD)
    assert health.check(T0 + 3 * PERIOD + 1) == (False, "MAAS unreachable: connection refused")


def test_failing_from_the_start_reports_the_reason_not_starting() -> None:
    """A first pass that failed is reported as its reason once the window passes."""
    health = _health()
    health.pass_failed("API key rejected by MAAS: HTTP 401", T0 + 1)
    assert health.check(T0 + 4 * PERIOD) == (False, "API key rejected by MAAS: HTTP 401")


def test_a_problem_is_unhealthy_at_once_and_cleared_by_a_pass() -> None:
    """set_problem() overrides a recent success; the next successful pass clears it."""
    health = _health()
    health.pass_ok(T0)
    health.set_problem("API key rejected by MAAS: HTTP 401")
    assert health.check(T0 + 1) == (False, "API key rejected by MAAS: HTTP 401")
    health.pass_ok(T0 + 2)
    assert health.check(T0 + 3) == (True, "ok")


def test_no_pass_for_three_periods_is_a_stuck_loop() -> None:
    """A loop whose last (good) pass is older than three periods is reported stuck."""
    health = _health()
    health.pass_ok(T0)
    assert health.check(T0 + 3 * PERIOD + 7) == (False, "loop stuck: no pass for 37 s")


def test_a_pass_still_retrying_maas_names_maas_not_a_stuck_loop() -> None:
    """Failed MAAS requests inside a pass that never ends explain the silence."""
    health = _health()
    health.pass_ok(T0)
    health.request_failed("MAAS unreachable: GET machines/: no response")
    assert health.check(T0 + 1) == (True, "ok")
    assert health.check(T0 + 3 * PERIOD + 7) == (
        False,
        "MAAS unreachable: GET machines/: no response",
    )
    health.pass_ok(T0 + 3 * PERIOD + 8)
    assert health.request_error is None


def test_never_finishing_a_first_pass_is_a_stuck_loop() -> None:
    """Three periods after start-up without any pass, "starting" becomes "loop stuck"."""
    assert _health().check(T0 + 40) == (False, "loop stuck: no pass for 40 s")


def test_check_uses_the_health_clock_when_no_time_is_given() -> None:
    """check() without `now` reads the injected clock (the endpoint calls it that way)."""
    now = [T0]
    health = Health(PERIOD, clock=lambda: now[0])
    health.pass_ok()
    now[0] += 3 * PERIOD + 1
    assert health.check() == (False, "loop stuck: no pass for 31 s")


# -- the endpoint over HTTP -------------------------------------------------------------------


async def test_healthz_answers_503_then_200_with_json(telemetry_url: str, health: Health) -> None:
    """/healthz is 503 {"status": "unhealthy"} before a pass and 200 {"status": "ok"} after."""
    async with httpx.AsyncClient() as client:
        before = await client.get(f"{telemetry_url}/healthz")
        health.pass_ok()
        after = await client.get(f"{telemetry_url}/healthz")
    assert (before.status_code, before.json()) == (
        503,
        {"status": "unhealthy", "reason": "starting"},
    )
    assert (after.status_code, after.json()) == (200, {"status": "ok", "reason": "ok"})


async def test_metrics_serves_prometheus_text(telemetry_url: str, metrics: Metrics) -> None:
    """/metrics answers the registry's exposition with Prometheus' content type."""
    metrics.observe_pass(0.5, True, {"Ready": 2}, {"ready": 2})
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{telemetry_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert 'maasflow_machines{status="Ready"} 2.0' in response.text


async def test_state_serves_the_snapshot(telemetry_url: str, snapshot_doc: dict[str, Any]) -> None:
    """/state answers exactly what snapshot() returns, as JSON, read at request time."""
    snapshot_doc["pass"]["count"] = 43
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{telemetry_url}/state")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == snapshot_doc


async def test_a_failing_snapshot_is_a_503_and_the_server_keeps_serving(
    health: Health, metrics: Metrics
) -> None:
    """A snapshot that raises gives 503 with a reason (no traceback), and /healthz still works."""

    def broken() -> dict[str, Any]:
        raise KeyError("secret-ish detail")

    app = build_telemetry_app(health, metrics, broken)
    async with serve_telemetry(app, "127.0.0.1:0") as url, httpx.AsyncClient() as client:
        state = await client.get(f"{url}/state")
        healthz = await client.get(f"{url}/healthz")
    assert (state.status_code, state.json()) == (503, {"error": "snapshot failed: KeyError"})
    assert healthz.status_code == 503


async def test_unknown_paths_and_methods_are_refused(telemetry_url: str) -> None:
    """Other paths are 404 and writes are 405: the endpoint is read-only."""
    async with httpx.AsyncClient() as client:
        missing = await client.get(f"{telemetry_url}/admin")
        post = await client.post(f"{telemetry_url}/healthz", content=b"x" * 10_000)
    assert (missing.status_code, post.status_code) == (404, 405)


async def test_serve_on_ipv6_loopback(health: Health, metrics: Metrics) -> None:
    """-listen [::1]:0 serves on IPv6 loopback and yields a bracketed URL."""
    if not _ipv6_loopback():
        pytest.skip("this host has no IPv6 loopback (::1) to bind")
    app = build_telemetry_app(health, metrics, dict)
    async with serve_telemetry(app, "[::1]:0") as url, httpx.AsyncClient() as client:
        response = await client.get(f"{url}/state")
    assert url.startswith("http://[::1]:")
    assert response.json() == {}


async def test_serving_leaves_the_programs_signal_handlers_alone(
    health: Health, metrics: Metrics
) -> None:
    """uvicorn must not take over SIGTERM/SIGINT: the daemon owns its shutdown."""
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    async with serve_telemetry(build_telemetry_app(health, metrics, dict), "127.0.0.1:0"):
        during = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    assert during == before


async def test_a_busy_port_is_a_one_line_config_error(health: Health, metrics: Metrics) -> None:
    """Listening on a port already in use raises ConfigError naming -listen and the way out."""
    app = build_telemetry_app(health, metrics, dict)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError) as caught:
            async with serve_telemetry(app, listen):
                pass
    message = str(caught.value)
    assert listen in message and '-listen ""' in message and "\n" not in message


async def test_the_port_is_free_again_after_the_context_exits(
    health: Health, metrics: Metrics
) -> None:
    """Leaving serve_telemetry closes the listening socket: the same port can be bound again."""
    async with serve_telemetry(build_telemetry_app(health, metrics, dict), "127.0.0.1:0") as url:
        port = int(url.rsplit(":", 1)[1])
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9410", ("127.0.0.1", 9410)),
        ("[::1]:9410", ("::1", 9410)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_addresses_parse(listen: str, expected: tuple[str, int]) -> None:
    """host:port and [v6]:port are accepted, as the settings accept them."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen", ["", "9410", "host:", "host:http", "::1:9410", "h:65536", ":9410", "[zz::1]:80"]
)
def test_bad_listen_addresses_are_config_errors(listen: str) -> None:
    """Anything the settings refuse (not host:port, or no host) raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="-listen"):
        parse_listen(listen)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True

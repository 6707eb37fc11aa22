"""The service shell: health, access logs without secrets, TLS, the power seam, the thread."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import APIRouter
from structlog.testing import capture_logs

from maasflow.common.errors import ConfigError
from maasflow.serve import ServiceConfig, ServiceThread, serve_service
from maasflow.serve.asgi import BodyLimit
from maasflow.serve.power_api import build_power_component
from maasflow.serve.power_config import PowerAuth, PowerConfig
from tests.service_power.helpers import wol_config


async def test_healthz_reports_workers_and_queue(kit: Any) -> None:
    """/healthz answers 200 with status ok, the worker count and the queue length."""
    async with kit.running(ServiceConfig(workers=3)) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "workers": 3, "queue": 0, "running": 0}


async def test_access_log_has_the_request_but_no_secrets(kit: Any) -> None:
    """Each request logs method, path, status, duration and client; never headers or query."""
    async with kit.running(ServiceConfig()) as client:
        with capture_logs() as logs:
            await client.get(
                "/provision/x?token=hunter2",
                headers={"Authorization": "Bearer sekrit-token"},
            )
    entries = [entry for entry in logs if entry["event"] == "http.request"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/provision/x", 404)
    assert entry["client"].startswith("127.0.0.1:") and entry["duration_ms"] >= 0
    assert "hunter2" not in repr(logs) and "sekrit" not in repr(logs)


async def test_access_log_neutralises_hostile_paths(kit: Any) -> None:
    """Control characters in a path cannot forge log lines, and long paths are cut."""
    async with kit.running(ServiceConfig()) as client:
        with capture_logs() as logs:
            await client.get("/provision/a%0Aevent%3Dforged" + "b" * 500)
    path = next(entry["path"] for entry in logs if entry["event"] == "http.request")
    assert "\n" not in path and path.startswith("/provision/a?event=forged")
    assert len(path) <= 203


def make_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    """With --tls-cert/--tls-key the service speaks HTTPS, verifiable with that certificate."""
    cert, key = make_certificate(tmp_path)
    async with serve_service(ServiceConfig(tls_cert=cert, tls_key=key)) as svc:
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=trust) as client:
            response = await client.get(f"{svc.url}/healthz")
    assert svc.url.startswith("https://127.0.0.1:")
    assert response.status_code == 200


async def test_unloadable_tls_files_are_a_config_error(tmp_path: Path) -> None:
    """A certificate file that is not PEM is a ConfigError naming the TLS flags."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="--tls-cert"):
        async with serve_service(ServiceConfig(tls_cert=bad, tls_key=bad)):
            pass


class FakePower:
    """A stand-in for the power target's component: a router, its secrets, its ends."""

    def __init__(self) -> None:
        self.router = APIRouter()
        self.closed = 0
        self.waits_ended_before_close = False

        @self.router.get("/power/{machine}")
        async def query(machine: str) -> dict[str, str]:
            return {"status": "running"}

    def secret_env_names(self) -> frozenset[str]:
        return frozenset({"FAKE_SECRET"})

    def end_waits(self) -> None:
        self.waits_ended_before_close = self.closed == 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_power_router_is_mounted_and_closed_on_shutdown() -> None:
    """A power component's routes are served; at stop its waits end first, then it is closed."""
    power = FakePower()
    async with serve_service(ServiceConfig(), power=power) as svc:  # type: ignore[arg-type]
        async with httpx.AsyncClient(base_url=svc.url) as client:
            answer = await client.get("/power/node-1")
            schema = (await client.get("/openapi.json")).json()
        assert power.closed == 0
    assert answer.json() == {"status": "running"}
    assert "/power/{machine}" in schema["paths"]
    assert power.closed == 1 and power.waits_ended_before_close


async def test_power_validation_errors_keep_fastapi_shape() -> None:
    """Only provisioning paths map 422 to 400; other routers keep FastAPI's 422."""
    power = FakePower()

    @power.router.get("/power/{machine}/n")
    async def numbered(machine: str, n: int) -> dict[str, int]:
        return {"n": n}

    async with (
        serve_service(ServiceConfig(), power=power) as svc,  # type: ignore[arg-type]
        httpx.AsyncClient(base_url=svc.url) as client,
    ):
        response = await client.get("/power/x/n?n=zz")
    assert response.status_code == 422 and "detail" in response.json()


async def test_failed_start_closes_the_power_component(tmp_path: Path) -> None:
    """When the service cannot start, the power component it was given is still closed."""
    power = FakePower()
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ConfigError):
        async with serve_service(ServiceConfig(db=tmp_path / "dir.sqlite"), power=power):  # type: ignore[arg-type]
            pass
    assert power.closed == 1


def test_service_thread_serves_until_left(kit: Any) -> None:
    """ServiceThread serves from a background thread and stops when the block ends."""
    script = kit.script("ok.sh", "exit 0\n")
    with ServiceThread(ServiceConfig(script=script)) as svc:
        url = svc.url
        assert httpx.get(f"{url}/healthz").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_service_thread_start_failure_is_raised_in_the_caller(tmp_path: Path) -> None:
    """A ServiceThread that cannot start raises the reason in the caller's thread."""
    (tmp_path / "dir.sqlite").mkdir()
    with (
        pytest.raises(ConfigError, match="--db"),
        ServiceThread(ServiceConfig(db=tmp_path / "dir.sqlite")),
    ):
        pass


def test_ipv6_loopback_url_is_bracketed(kit: Any) -> None:
    """Listening on ::1 gives an http://[::1]:port URL that answers."""
    try:
        thread = ServiceThread(ServiceConfig(), host="::1").start()
    except ConfigError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert thread.url.startswith("http://[::1]:")
        assert httpx.get(f"{thread.url}/healthz").status_code == 200
    finally:
        thread.stop()


async def test_chunked_body_past_the_cap_answers_413(kit: Any) -> None:
    """A body without Content-Length is counted as it arrives and refused past the cap."""

    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 4096

    async with kit.running(ServiceConfig()) as client:
        response = await client.post("/provision/", content=chunks())
    assert response.status_code == 413


async def test_body_limit_does_not_call_the_app_for_a_vanished_client() -> None:
    """When the client disconnects before its body arrived, the app is not called."""
    called: list[object] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        called.append(message)

    await BodyLimit(app, limit=10)({"type": "http", "headers": []}, receive, send)
    assert called == []


async def test_pool_reports_healthy_only_while_serving() -> None:
    """The job pool counts as healthy while its workers run, and not after shutdown."""
    async with serve_service(ServiceConfig(workers=2)) as svc:
        assert svc.pool.healthy
    assert not svc.pool.healthy


async def test_a_path_ending_in_a_newline_is_refused_not_answered_as_a_listing() -> None:
    """`/provision/%0A`, `/power/%0A` and kin answer 400 `{"error"}`, never a listing."""
    power = build_power_component(
        PowerConfig.model_validate(wol_config(9)), PowerAuth(), state_path=None
    )
    paths = ["/provision/%0A", "/provision%0A", "/power/%0A", "/power%0A", "/power/acks%0A"]
    paths += ["/power/desk1%0A", "/provision/abc123%0A", "/healthz%0A", "/provision/a%00b"]
    async with (
        serve_service(ServiceConfig(), power=power) as svc,
        httpx.AsyncClient(base_url=svc.url) as client,
    ):
        answers = {path: await client.get(path) for path in paths}
        listing = await client.get("/power/")
    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(
        paths, 400
    )
    assert all(set(answer.json()) == {"error"} for answer in answers.values())
    assert listing.status_code == 200 and isinstance(listing.json(), list)


async def test_health_probes_are_logged_at_debug_and_a_failing_one_at_info(kit: Any) -> None:
    """A /healthz that answers 200 is a debug line (probes come every few seconds); other
    requests, and a health path that fails, stay at info."""
    async with kit.running(ServiceConfig()) as client:
        with capture_logs() as logs:
            await client.get("/healthz")
            await client.get("/provision/x")
            await client.post("/healthz")  # 405: not a probe that went well
    levels = [
        (e["path"], e["status"], e["log_level"]) for e in logs if e["event"] == "http.request"
    ]
    assert levels == [
        ("/healthz", 200, "debug"),
        ("/provision/x", 404, "info"),
        ("/healthz", 405, "info"),
    ]

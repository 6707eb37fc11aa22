"""The optional Bearer token of `/provision/*`: required on every route when set, open when not."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from structlog.testing import capture_logs

from maasflow.common.errors import ConfigError
from maasflow.serve import ServiceConfig, ServiceThread
from maasflow.serve.cli import build_parser, config_from_args
from maasflow.serve.jobs import child_env
from maasflow.serve.records import JobRequest
from maasflow.serve.server import _warn_if_open

TOKEN = "s3cret-Provision-Token"
ROUTES = [
    ("POST", "/provision/"),
    ("GET", "/provision/"),
    ("GET", "/provision/abc123"),
    ("GET", "/provision/abc123/log"),
    ("DELETE", "/provision/abc123"),
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A service with a quick script and a token, on 127.0.0.1, for the whole module."""
    script = tmp_path_factory.mktemp("token") / "ok.sh"
    script.write_text("#!/bin/sh\necho ok\n")
    script.chmod(0o755)
    with ServiceThread(ServiceConfig(script=script, provision_token=TOKEN)) as svc:
        yield svc


def _call(url: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {"id": "abc123", "name": "node-1", "ip": "10.0.0.7"} if method == "POST" else None
    return httpx.request(method, url + path, json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_route_refuses_without_the_token(
    guarded: Any, method: str, path: str, headers: dict[str, str]
) -> None:
    """Each provisioning route answers 401 JSON with WWW-Authenticate without the right token."""
    response = _call(guarded.url, method, path, headers)
    assert response.status_code == 401
    assert "error" in response.json()
    assert response.headers["www-authenticate"] == 'Bearer realm="maasflow-provision"'


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_route_accepts_the_token(guarded: Any, method: str, path: str) -> None:
    """Each provisioning route answers normally (not 401) given the right Bearer token."""
    response = _call(guarded.url, method, path, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code in (200, 202, 404)


def test_health_and_schema_stay_open(guarded: Any) -> None:
    """/healthz and /openapi.json need no token, and the schema declares the bearer scheme."""
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200
    schema = httpx.get(f"{guarded.url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["provisionToken"]["scheme"] == "bearer"
    assert "401" in schema["paths"]["/provision/{job_id}"]["get"]["responses"]
    assert TOKEN not in str(schema)


def test_open_when_no_token(tmp_path: Path) -> None:
    """Without a token configured the provisioning routes answer without any header."""
    with ServiceThread(ServiceConfig(script=None)) as svc:
        assert httpx.get(f"{svc.url}/provision/").status_code == 200
        assert httpx.get(f"{svc.url}/provision/x1").status_code == 404


def test_token_never_logged(tmp_path: Path) -> None:
    """Requests with right and wrong tokens leave the token out of every log event."""
    script = tmp_path / "ok.sh"
    script.write_text("#!/bin/sh\necho ok\n")
    script.chmod(0o755)
    config = ServiceConfig(script=script, provision_token=TOKEN)
    with capture_logs() as logs, ServiceThread(config) as svc:
        for token in (TOKEN, TOKEN + "x"):
            _call(svc.url, "POST", "/provision/", {"Authorization": f"Bearer {token}"})
    assert logs and TOKEN not in str(logs)
    assert TOKEN not in repr(ServiceConfig(provision_token=TOKEN))


def test_schemathesis_clean_with_a_token(guarded: Any) -> None:
    """Generated requests, with or without the token, never get a 5xx or undocumented answer."""
    schema = schemathesis.openapi.from_url(f"{guarded.url}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=guarded.url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                excluded_checks=[positive_data_acceptance],
            )

        check()


def test_token_kept_from_the_script_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provisioning script's environment holds neither MAASFLOW_PROVISION_TOKEN nor the token."""
    monkeypatch.setenv("MAASFLOW_PROVISION_TOKEN", TOKEN)
    env = child_env(JobRequest("a1", "n", "10.0.0.1", "", None, None), "compute")
    assert "MAASFLOW_PROVISION_TOKEN" not in env
    assert TOKEN not in env.values()


def test_script_run_does_not_see_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real job's script, run under a token in the env, finds no trace of it in its env."""
    monkeypatch.setenv("MAASFLOW_PROVISION_TOKEN", TOKEN)
    script = tmp_path / "env.sh"
    script.write_text("#!/bin/sh\nenv\n")
    script.chmod(0o755)
    with ServiceThread(ServiceConfig(script=script, provision_token=TOKEN)) as svc:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        _call(svc.url, "POST", "/provision/", auth)
        deadline = time.monotonic() + 20
        while httpx.get(f"{svc.url}/provision/abc123", headers=auth).json()["status"] < 2:
            if time.monotonic() > deadline:
                pytest.fail("the job never finished")
            time.sleep(0.02)
        log = httpx.get(f"{svc.url}/provision/abc123/log", headers=auth).text
    assert "MAASFLOW_SYSTEM_ID=abc123" in log
    assert TOKEN not in log


def _args(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    """--provision-token-file yields the file's content without surrounding whitespace."""
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    config = config_from_args(_args("--provision-token-file", str(path)), env={})
    assert config.provision_token == TOKEN


def test_token_env_is_used(tmp_path: Path) -> None:
    """MAASFLOW_PROVISION_TOKEN gives the token when no file is named; absent means no token."""
    assert config_from_args(_args(), env={"MAASFLOW_PROVISION_TOKEN": TOKEN}).provision_token == (
        TOKEN
    )
    assert config_from_args(_args(), env={}).provision_token is None


@pytest.mark.parametrize(
    "content",
    [None, "", "  \n", "tok\nen", "two words"],
    ids=["unreadable", "empty", "blank", "two-lines", "space"],
)
def test_bad_token_file_is_a_config_error(tmp_path: Path, content: str | None) -> None:
    """A missing, empty, blank, two-line or spaced token file is a ConfigError naming the flag,
    not the token."""
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="--provision-token-file") as caught:
        config_from_args(_args("--provision-token-file", str(path)), env={})
    assert "two words" not in str(caught.value) and "tok\nen" not in str(caught.value)


class _FakeSocket:
    def __init__(self, address: str) -> None:
        self.address = address

    def getsockname(self) -> tuple[str, int]:
        return (self.address, 9420)


@pytest.mark.parametrize(
    ("address", "token", "warned"),
    [
        ("192.0.2.1", None, True),
        ("::", None, True),
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("192.0.2.1", TOKEN, False),
    ],
)
def test_warns_when_open_beyond_loopback(address: str, token: str | None, warned: bool) -> None:
    """Serving without a token on a non-loopback address logs one warning; otherwise none."""
    with capture_logs() as logs:
        _warn_if_open(
            cast(socket.socket, _FakeSocket(address)), ServiceConfig(provision_token=token)
        )
    events = [e for e in logs if e["event"] == "service.provision_unprotected"]
    assert len(events) == (1 if warned else 0)


def test_token_env_is_checked_like_the_file() -> None:
    """MAASFLOW_PROVISION_TOKEN empty or with a space is refused by name, never echoed."""
    for value, words in (("  ", "empty"), ("two words", "printable ASCII")):
        with pytest.raises(ConfigError, match=rf"^MAASFLOW_PROVISION_TOKEN: .*{words}") as info:
            config_from_args(_args(), env={"MAASFLOW_PROVISION_TOKEN": value})
        assert "two words" not in str(info.value)

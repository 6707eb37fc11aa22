"""Role selection and script choice: request role, role-selector URL, default; per-role and
allow-listed scripts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from structlog.testing import capture_logs

from maasflow.serve import ServiceConfig

COMPLETE = 2


class Selector:
    """A loopback role selector answering `answer` with `status`, remembering each query."""

    def __init__(self) -> None:
        self.answer = b"storage\n"
        self.status = 200
        self.queries: list[dict[str, list[str]]] = []
        selector = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                selector.queries.append(parse_qs(urlsplit(self.path).query))
                self.send_response(selector.status)
                self.send_header("Content-Length", str(len(selector.answer)))
                self.end_headers()
                self.wfile.write(selector.answer)

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/role?token=s3cret"


@pytest.fixture
def selector() -> Iterator[Selector]:
    """A role selector on 127.0.0.1, stopped after the test."""
    sel = Selector()
    thread = threading.Thread(target=sel.server.serve_forever, daemon=True)
    thread.start()
    yield sel
    sel.server.shutdown()
    sel.server.server_close()


async def run_one(kit: Any, config: ServiceConfig, **extra: Any) -> dict[str, Any]:
    """POST one machine and return its record once complete."""
    async with kit.running(config) as client:
        posted = await client.post("/provision/", json=kit.machine(**extra))
        assert posted.status_code == 202, posted.text
        return dict(await kit.wait_record(client, "abc123", COMPLETE))


async def test_role_from_request_wins(kit: Any, selector: Selector) -> None:
    """A request's own role is used, without asking the selector."""
    script = kit.gated_script("r.sh")
    kit.release("r.sh")
    config = ServiceConfig(script=script, role_selector_url=selector.url)
    record = await run_one(kit, config, role="gpu")
    assert record["role"] == "gpu" and kit.runs("r.sh")[0].endswith(" gpu")
    assert selector.queries == []


async def test_role_from_selector_body_and_its_query(kit: Any, selector: Selector) -> None:
    """Without a role, the selector's stripped body is the role; it is asked id/name/ip/mac."""
    script = kit.gated_script("r.sh")
    kit.release("r.sh")
    config = ServiceConfig(script=script, role_selector_url=selector.url)
    record = await run_one(kit, config)
    assert record["role"] == "storage" and kit.runs("r.sh")[0].endswith(" storage")
    assert selector.queries == [
        {
            "token": ["s3cret"],
            "id": ["abc123"],
            "name": ["node-1"],
            "ip": ["10.0.0.7"],
            "mac": ["52:54:00:aa:bb:cc"],
        }
    ]


@pytest.mark.parametrize(
    ("status", "answer"),
    [(500, b"storage"), (200, b""), (200, b"../../etc/passwd"), (200, b"a b c")],
    ids=["server error", "empty", "path", "spaces"],
)
async def test_selector_failure_gives_default_role_and_a_warning(
    kit: Any, selector: Selector, status: int, answer: bytes
) -> None:
    """A selector that fails or answers no valid role name gives the default role, logged."""
    selector.status, selector.answer = status, answer
    script = kit.gated_script("r.sh")
    kit.release("r.sh")
    config = ServiceConfig(script=script, role_selector_url=selector.url, default_role="basic")
    with capture_logs() as logs:
        record = await run_one(kit, config)
    assert record["role"] == "basic"
    warnings = [entry for entry in logs if entry["event"].startswith("role.selector_")]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert "s3cret" not in repr(logs)


async def test_unreachable_selector_gives_default_role(kit: Any, selector: Selector) -> None:
    """A selector that cannot be reached gives the default role."""
    url = selector.url
    selector.server.shutdown()
    selector.server.server_close()
    script = kit.gated_script("r.sh")
    kit.release("r.sh")
    record = await run_one(kit, ServiceConfig(script=script, role_selector_url=url))
    assert record["role"] == "compute"


async def test_default_role_without_selector(kit: Any) -> None:
    """Without request role or selector, --default-role is used."""
    script = kit.gated_script("r.sh")
    kit.release("r.sh")
    record = await run_one(kit, ServiceConfig(script=script, default_role="edge"))
    assert record["role"] == "edge" and kit.runs("r.sh")[0].endswith(" edge")


async def test_each_role_runs_its_own_script(kit: Any) -> None:
    """A role with a --role-script runs that script; other roles run --script."""
    default, storage = kit.gated_script("default.sh"), kit.gated_script("storage.sh")
    kit.release("default.sh")
    kit.release("storage.sh")
    config = ServiceConfig(script=default, role_scripts={"storage": storage})
    async with kit.running(config) as client:
        await client.post("/provision/", json=kit.machine("s1", role="storage"))
        await client.post("/provision/", json=kit.machine("c1", role="compute"))
        await kit.wait_record(client, "s1", COMPLETE)
        await kit.wait_record(client, "c1", COMPLETE)
    assert [line.split()[0] for line in kit.runs("storage.sh")] == ["s1"]
    assert [line.split()[0] for line in kit.runs("default.sh")] == ["c1"]


async def test_request_may_choose_an_allow_listed_script_by_name(kit: Any) -> None:
    """A request's `script` names a configured script, which then runs with the role."""
    default, wipe = kit.gated_script("default.sh"), kit.gated_script("wipe.sh")
    kit.release("wipe.sh")
    config = ServiceConfig(script=default, allowed_scripts={"wipe": wipe})
    record = await run_one(kit, config, script="wipe")
    assert record["request"]["script"] == "wipe"
    assert kit.runs("wipe.sh") == ["abc123 node-1 10.0.0.7 52:54:00:aa:bb:cc compute"]
    assert kit.runs("default.sh") == []


async def test_role_script_names_are_choosable_too(kit: Any) -> None:
    """A request may name a --role-script by its role, whatever its own role."""
    default, storage = kit.gated_script("default.sh"), kit.gated_script("storage.sh")
    kit.release("storage.sh")
    config = ServiceConfig(script=default, role_scripts={"storage": storage})
    await run_one(kit, config, script="storage", role="compute")
    assert kit.runs("storage.sh") == ["abc123 node-1 10.0.0.7 52:54:00:aa:bb:cc compute"]

"""A real HTTP provisioner on 127.0.0.1 for the tests: scripted answers, recorded requests."""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Seen:
    """One request the fake provisioner received."""

    method: str
    path: str  # the raw request target, as sent on the wire
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeProvisioner:
    """Answers each (method, path) with the next scripted (status, body); 404 when none left."""

    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    answers: dict[tuple[str, str], deque[tuple[int, str]]] = field(
        default_factory=lambda: defaultdict(deque)
    )

    def script(self, method: str, path: str, *answers: tuple[int, str]) -> None:
        self.answers[(method, path)].extend(answers)

    def answer(self, method: str, path: str) -> tuple[int, str]:
        queue = self.answers.get((method, path))
        return queue.popleft() if queue else (404, "")


def _handler(fake: FakeProvisioner) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fake.requests.append(Seen(self.command, self.path, body, dict(self.headers)))
            status, text = fake.answer(self.command, self.path)
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def provisioner() -> Iterator[FakeProvisioner]:
    """A running fake provisioner; its base URL is `<server>/provision`."""
    fake = FakeProvisioner()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/provision"
    yield fake
    server.shutdown()
    server.server_close()

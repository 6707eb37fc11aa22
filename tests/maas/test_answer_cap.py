"""MAAS answers are capped while they stream: a huge listing is refused, not held in memory.

A stand-in MAAS on 127.0.0.1 (a thread with a plain socket server) streams bodies far larger
than the client's cap and counts what it managed to send before the client hung up. The
client must refuse the answer with a permanent error naming the URL and the setting, after
reading little more than the cap (what the kernel's socket buffers hold aside).
"""

from __future__ import annotations

import gzip
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from maasflow.common.errors import PermanentMaasError
from maasflow.daemon.maas.client import MaasClient

CAP = 1024 * 1024
HUGE = 200 * 1024 * 1024
CHUNK = b'{"system_id": "4y3ha3", "hostname": "node", "status": 4}, ' * 1024


@dataclass
class Feed:
    """How the stand-in answers, and how much of it went out."""

    headers: dict[str, str]
    total: int = HUGE
    body: bytes | None = None  # sent as is, else "[" and `total` bytes of CHUNK repeated
    sent: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class _Handler(socketserver.StreamRequestHandler):
    feed: Feed

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # the request line and headers: every request gets the same answer
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.feed.headers.items()) + "\r\n"
        try:
            self.wfile.write(head.encode())
            if self.feed.body is not None:
                self.wfile.write(self.feed.body)
                self.feed.sent += len(self.feed.body)
            if self.feed.body is None:  # a listing that parses as far as it goes
                self.wfile.write(b"[")
            while self.feed.body is None and self.feed.sent < self.feed.total:
                self.wfile.write(CHUNK)
                self.feed.sent += len(CHUNK)
        except OSError:
            pass  # the client hung up: what we want to see
        finally:
            self.feed.done.set()


@pytest.fixture
def stand_in() -> Iterator[tuple[str, Feed]]:
    """A stand-in MAAS URL and the feed it answers every request with (set by the test)."""
    feed = Feed(headers={})
    handler = type("Handler", (_Handler,), {"feed": feed})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/MAAS", feed
    finally:
        server.shutdown()
        server.server_close()


def client(url: str, key: str) -> MaasClient:
    return MaasClient(url, key, max_attempts=1, timeout=10, max_answer_bytes=CAP)


async def test_a_200_mb_listing_is_refused_after_reading_about_the_cap(stand_in, key) -> None:
    """The listing is refused with the URL and the setting named; most of it was never sent."""
    url, feed = stand_in
    async with client(url, key.full) as maas:
        with pytest.raises(PermanentMaasError) as caught:
            await maas.list_machines()
    message = str(caught.value)
    assert f"{url}/api/2.0/machines/" in message and "MAAS_MAX_ANSWER_SIZE" in message
    assert f"larger than {CAP} bytes" in message
    assert feed.done.wait(10)
    assert feed.sent < 32 * 1024 * 1024  # the cap plus socket buffers, not 200 MB


async def test_an_announced_length_past_the_cap_is_refused_before_the_body(stand_in, key) -> None:
    """A Content-Length over the cap is refused at once, without waiting for the body."""
    url, feed = stand_in
    feed.headers["Content-Length"] = str(HUGE)
    feed.body = b"[" + CHUNK[:100]  # and then silence: a reader of the whole body would hang
    async with client(url, key.full) as maas:
        with pytest.raises(PermanentMaasError, match="MAAS_MAX_ANSWER_SIZE"):
            await maas.whoami()


async def test_a_gzip_bomb_counts_at_its_decoded_size(stand_in, key) -> None:
    """A small compressed answer that inflates past the cap is refused like a large one."""
    url, feed = stand_in
    feed.body = gzip.compress(b" " * (8 * CAP))
    feed.headers.update({"Content-Encoding": "gzip", "Content-Length": str(len(feed.body))})
    assert len(feed.body) < CAP
    async with client(url, key.full) as maas:
        with pytest.raises(PermanentMaasError, match=f"larger than {CAP} bytes"):
            await maas.list_machines()


async def test_a_listing_under_the_cap_is_read_whole(stand_in, key) -> None:
    """An answer below the cap (gzip or not) is decoded as before."""
    url, feed = stand_in
    listing = b"[" + b", ".join([b'{"system_id": "4y3ha3", "status": 4}'] * 1000) + b"]"
    feed.body = gzip.compress(listing)
    feed.headers.update({"Content-Encoding": "gzip", "Content-Length": str(len(feed.body))})
    async with client(url, key.full) as maas:
        machines = await maas.list_machines()
    assert len(machines) == 1000 and machines[0].system_id == "4y3ha3"

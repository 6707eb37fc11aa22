"""A loopback HTTP proxy that loses answers on purpose: the request reaches the server, the
server acts and answers, and the client never hears it (the connection is cut).

One request per connection (`Connection: close` both ways), which is all a test needs. Each
request is logged as `METHOD path`; `lose(method, count)` makes the next `count` requests of
that method lose their answers. Runs in a thread; `close()` stops it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter


def _read_request(conn: socket.socket) -> bytes:
    """One HTTP request (head and Content-Length body) from `conn`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return _closing(head) + b"\r\n\r\n" + body


def _closing(head: bytes) -> bytes:
    """The request head with `Connection: close`, so the server ends the answer with EOF."""
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"])


class LossyProxy:
    """Forwards 127.0.0.1:<port> to `upstream` (host, port), losing the answers it is told to."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.log: list[str] = []
        self._lose: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def lose(self, method: str, count: int = 1) -> None:
        """The next `count` `method` requests reach the server; their answers are dropped."""
        with self._lock:
            self._lose[method] += count

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            if not request:
                return
            method, path = request.split(b" ", 2)[:2]
            with self._lock:
                self.log.append(f"{method.decode()} {path.decode()}")
                lost = self._lose[method.decode()] > 0
                self._lose[method.decode()] -= int(lost)
            answer = self._forward(request)
            if not lost:
                with contextlib.suppress(OSError):
                    conn.sendall(answer)

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self.upstream) as up:
            up.sendall(request)
            answer = b""
            while chunk := up.recv(65536):
                answer += chunk
        return answer

    def close(self) -> None:
        self._server.close()
        self._thread.join(5)

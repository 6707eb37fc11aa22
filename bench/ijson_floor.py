"""The floor of a pass: ijson (yajl2_c, pull mode) streaming a listing, in its own process.

`python bench/ijson_floor.py URL` reads the API key from its first stdin line (never on
its command line), then one line "go" per run, fetches `machines/` from URL (OAuth-signed,
urllib), parses every machine with `ijson.items` as the bytes arrive, and answers one line:
seconds taken (wall, then CPU), machines, bytes. No fields are copied and nothing is decided:
this is what the bytes themselves cost. `FloorProcess` drives it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

import ijson


class _Counted:
    """A response that counts the bytes read through it."""

    def __init__(self, raw: object) -> None:
        self.raw, self.size = raw, 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.raw.read(n)  # type: ignore[attr-defined]
        self.size += len(data)
        return data


def floor_once(url: str, key: str) -> tuple[float, float, int, int]:
    from maasflow.daemon.maas.auth import MaasAuth

    listing = url + "/api/2.0/machines/"
    started, cpu = time.perf_counter(), time.process_time()
    if not listing.startswith("http://127.0.0.1:"):
        raise SystemExit(f"the floor reads only a loopback region, not {listing}")
    request = urllib.request.Request(listing)  # noqa: S310 - loopback http, checked above
    request.add_header("Authorization", MaasAuth(key).authorization(listing, "GET"))
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        counted = _Counted(response)
        machines = sum(1 for _ in ijson.items(counted, "item", use_float=True))
    return time.perf_counter() - started, time.process_time() - cpu, machines, counted.size


class FloorProcess:
    """The floor as a child process: `run()` times one listing there."""

    def __init__(self, url: str, key: str) -> None:
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__)), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdin is not None
        self._child.stdin.write(key + "\n")

    def run(self) -> tuple[float, float, int, int]:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write("go\n")
        self._child.stdin.flush()
        seconds, cpu, machines, size = self._child.stdout.readline().split()
        return float(seconds), float(cpu), int(machines), int(size)

    def __enter__(self) -> FloorProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._child.stdin is not None
        self._child.stdin.close()
        self._child.wait(30)


if __name__ == "__main__":
    print(f"backend {ijson.backend}", file=sys.stderr)
    api_key = sys.stdin.readline().strip()
    for _line in sys.stdin:
        seconds, cpu, machines, size = floor_once(sys.argv[1], api_key)
        print(seconds, cpu, machines, size, flush=True)

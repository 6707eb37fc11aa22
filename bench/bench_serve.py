"""Benchmark 6: `maasflow serve`, POST+poll cycles a second and the drain of queued jobs.

`maasflow serve` runs in its own process (`--workers 16`, SQLite records in a temporary
folder) with a script that does nothing but exit 0. Measured in one run:

- cycles a second: one client, one job at a time: POST /provision/, then GET
  /provision/{id} every 5 ms until it answers 200 (complete), `--cycles` times (default 100);
- the drain: `--jobs` (default 1,000) POSTs sent as fast as one client can, then the time
  from the first POST until every job is complete (GET /provision/ every 0.2 s);
- the floor of the drain: `xargs -P16` running the same script with the same arguments
  `--jobs` times;
- the drain ÷ the floor (the issue measured 3.5 s against 0.5 s: 7).

Every drained job's record is checked: complete (the script exited 0), one record per id.
Run: `.venv/bin/python bench/bench_serve.py [--jobs N] [--cycles C] [--workers W]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ARGS = ["node-{n}", "10.0.0.1", "52:54:00:00:00:01", "compute"]
DEADLINE = 300.0


def write_script(folder: Path) -> Path:
    """A provisioning script that does nothing and succeeds."""
    script = folder / "provision.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


class Service:
    """`maasflow serve` as a child process; `url` once it listens."""

    def __init__(self, folder: Path, script: Path, workers: int, queue: int) -> None:
        args = [sys.executable, "-m", "maasflow", "serve", "--port", "0", "--log-format", "json"]
        args += ["--workers", str(workers), "--queue-limit", str(queue), "--script", str(script)]
        args += ["--db", str(folder / "records.sqlite"), "--log-level", "info"]
        self.log_path = folder / "serve.log"
        with self.log_path.open("w") as log:
            env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        self.url = self._listening()

    def _listening(self) -> str:
        started = time.perf_counter()
        while self.proc.poll() is None and time.perf_counter() - started < 60:
            for line in self.log_path.read_text().splitlines():
                if '"service.listening"' in line:
                    return str(json.loads(line)["url"])
            time.sleep(0.05)
        raise SystemExit(f"serve did not start: {self.log_path.read_text()[-2000:]}")

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the service itself, and of its children it has reaped."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        ticks = os.sysconf("SC_CLK_TCK")
        own = (int(fields[11]) + int(fields[12])) / ticks
        return own, (int(fields[13]) + int(fields[14])) / ticks

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def body(n: int) -> dict[str, str]:
    name, ip, mac, _role = ARGS
    return {"id": f"job-{n}", "name": name.format(n=n), "ip": ip, "mac": mac}


def cycles(http: httpx.Client, url: str, count: int) -> float:
    """Cycles a second: POST one job, poll it until complete, `count` times in a row."""
    started = time.perf_counter()
    for n in range(count):
        http.post(f"{url}/provision/", json=body(100_000 + n)).raise_for_status()
        while http.get(f"{url}/provision/job-{100_000 + n}").status_code != 200:
            time.sleep(0.005)
    return count / (time.perf_counter() - started)


def drain(http: httpx.Client, url: str, count: int) -> float:
    """Seconds from the first POST of `count` jobs until all are complete (each checked)."""
    started = time.perf_counter()
    for n in range(count):
        http.post(f"{url}/provision/", json=body(n)).raise_for_status()
    while True:
        ours = [r for r in http.get(f"{url}/provision/").json() if _index(r) < count]
        if len(ours) == count and all(r["status_name"] in ("complete", "failed") for r in ours):
            break
        if time.perf_counter() - started > DEADLINE:
            raise SystemExit("the drain did not finish in time")
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    bad = [r for r in ours if r["status_name"] != "complete"]
    if bad:
        raise SystemExit(f"{len(bad)} jobs did not complete: {bad[:2]}")
    return seconds


def _index(record: dict[str, Any]) -> int:
    """n of a drain job "job-n"; the cycles' jobs (100,000 and up) are not the drain's."""
    return int(record["request"]["id"].removeprefix("job-"))


def xargs_floor(script: Path, count: int, workers: int) -> float:
    """`xargs -P<workers>` running the script `count` times with the same arguments."""
    lines = "".join(f"job-{n} node-{n} 10.0.0.1 52:54:00:00:00:01 compute\n" for n in range(count))
    xargs = shutil.which("xargs") or "xargs"
    started = time.perf_counter()
    subprocess.run([xargs, f"-P{workers}", "-L1", str(script)], input=lines, text=True, check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = write_script(folder)
        service = Service(folder, script, args.workers, args.jobs + args.cycles)
        try:
            with httpx.Client(timeout=30) as http:
                rate = cycles(http, service.url, args.cycles)
                floor = xargs_floor(script, args.jobs, args.workers)
                cpu_before = service.cpu()
                seconds = drain(http, service.url, args.jobs)
                own, children = (b - a for a, b in zip(cpu_before, service.cpu(), strict=True))
                floor_again = xargs_floor(script, args.jobs, args.workers)
        finally:
            service.stop()
    print(f"maasflow serve, {args.workers} workers, a script that exits 0:")
    print(f"  POST+poll cycles: {rate:.1f} a second ({args.cycles} in a row, one client)")
    print(f"  drain of {args.jobs} queued jobs: {seconds:.2f} s")
    print(f"  xargs -P{args.workers}, same script: {floor:.2f} s before, {floor_again:.2f} s after")
    print(f"  CPU over the drain: the service {own:.2f} s, its children {children:.2f} s")
    print(f"  drain / xargs {seconds / ((floor + floor_again) / 2):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

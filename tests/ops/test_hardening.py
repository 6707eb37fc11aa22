"""The units' hardening does not break maasflow: the whole demo (simulator, `maasflow serve`,
the daemon, supervised provisioning scripts) runs under strace and makes none of the system
calls `SystemCallFilter=~@privileged @resources` denies, and opens nothing in /proc that
`ProcSubset=pid` hides (beyond one probe that expects to fail there)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DENIED_GROUPS = ("@privileged", "@resources")
# SQLite gives its journal files the database's owner with fchown() only when running as root
# (the unit's user never is) and ignores a failure: seen here only because the test is root.
ROOT_ONLY = {"fchown"} if os.geteuid() == 0 else set()
# prometheus_client reads /proc/stat's btime when imported and catches the OSError it gets
# under ProcSubset=pid (its default registry, which maasflow does not serve, loses process_*).
PROC_PROBES = {"/proc/stat"}
PROCESS_FILES = re.compile(r"/proc/(\d+|self|thread-self)(/|$)")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def denied_syscalls(analyze: str) -> set[str]:
    """Every system call in the denied groups, nested groups expanded, by systemd's own table."""
    found: set[str] = set()
    pending = list(DENIED_GROUPS)
    while pending:
        out = subprocess.run(
            [analyze, "syscall-filter", pending.pop()],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        for line in out.splitlines()[1:]:
            word = line.split("#")[0].strip()
            if word.startswith("@"):
                pending.append(word)
            elif word:
                found.add(word)
    return found


def test_the_demo_makes_no_denied_system_call_and_reads_only_process_files_in_proc(
    tmp_path: Path,
) -> None:
    """Every process of the demo, traced: no @privileged or @resources call, no /proc file
    outside a process's own directory; the demo itself still succeeds."""
    strace = _tool("strace")
    if subprocess.run([strace, "-qq", "true"], capture_output=True, check=False).returncode:
        pytest.skip("strace cannot trace here (ptrace is not permitted)")
    calls = sorted(denied_syscalls(_tool("systemd-analyze")))
    log = tmp_path / "trace"
    traced = ",".join([*(f"?{call}" for call in calls), "open", "openat"])
    maasflow = str(Path(sys.executable).parent / "maasflow")
    done = subprocess.run(
        [strace, "-f", "-qq", "-o", str(log), "-e", f"trace={traced}", maasflow, "demo"],
        cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    made: set[str] = set()
    proc_files: set[str] = set()
    for line in log.read_text().splitlines():
        call = re.match(r"\d+\s+(\w+)\(", line)
        if call is None:
            continue
        if call.group(1) in {"open", "openat"}:
            path = re.search(r'"(/proc/[^"]*)"', line)
            if path is not None and not PROCESS_FILES.match(path.group(1)):
                proc_files.add(path.group(1))
        else:
            made.add(call.group(1))
    assert made - ROOT_ONLY == set()
    assert proc_files - PROC_PROBES == set()

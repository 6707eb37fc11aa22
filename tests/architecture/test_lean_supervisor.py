"""The supervisor, started once per provisioning job, stays lean: no event loop, no site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from maasflow.common import supervision
from maasflow.common.child import Limits

HEAVY = ("asyncio", "httpx", "pydantic", "structlog", "fastapi", "ssl", "site")


def test_the_supervisor_is_booted_isolated_and_without_site() -> None:
    """supervision starts `python -I -S -c <boot> <package root>` and the boot runs main."""
    argv = supervision.supervisor_argv(["true"], Path("/r.json"), Limits(timeout=5))
    assert argv[:4] == [sys.executable, "-I", "-S", "-c"]
    assert "from maasflow.common.supervisor import main" in argv[4]
    assert (Path(argv[5]) / "maasflow" / "common" / "supervisor.py").is_file()
    assert argv[6:] == ["/r.json", "5", "5.0", "1.0", "65536", "--", "true"]


def test_the_supervisor_imports_no_event_loop_nor_library() -> None:
    """Booted that way, importing the supervisor loads none of HEAVY (asyncio was ~60 % of
    a job's CPU)."""
    root = supervision.supervisor_argv(["true"], Path("/r.json"), Limits())[5]
    probe = (
        f"import sys; sys.path.insert(0, {root!r}); import maasflow.common.supervisor; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert "maasflow" in loaded
    assert [name for name in HEAVY if name in loaded] == []

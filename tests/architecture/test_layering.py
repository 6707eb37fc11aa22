"""The house's layering holds: each room imports, directly or through others, only what it may.

maasflow is three programs and what they share::

    maasflow/cli.py, demo.py     wiring: may import every room
    maasflow/daemon/             the daemon (its MAAS client in daemon/maas/)
    maasflow/serve/              `maasflow serve`: provisioning service, webhook power target
    maasflow/sim/                the MAAS simulator, an independent oracle
    maasflow/common/             what all three share (errors, logs, web server, children, ...)

Imports are read from the source with `ast` and followed transitively, so a forbidden import
fails here even when it arrives through a third module.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "maasflow"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module a dotted import lands in (`from a.b import c` may name module a.b.c)."""
    known = modules()
    while name and name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


@cache
def direct_imports(module: str) -> frozenset[str]:
    """Every absolute name `module` imports, at any depth of its body (relative ones resolved)."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(names)


@cache
def reach(module: str) -> frozenset[str]:
    """Every name imported by `module` or by any maasflow module it imports, transitively."""
    seen: set[str] = set()
    todo = [module]
    names: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in direct_imports(current):
            names.add(name)
            target = _resolve(name)
            if target in modules() and target not in seen:
                todo.append(target)
    return frozenset(names)


def in_room(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def strays(room: str, allowed: tuple[str, ...]) -> list[str]:
    """`module reaches name` for every maasflow name a room's modules reach outside `allowed`."""
    return [
        f"{module} reaches {name}"
        for module in modules()
        if in_room(module, room)
        for name in sorted(reach(module))
        if in_room(name, "maasflow")
        and name != "maasflow"
        and not any(in_room(name, a) for a in allowed)
    ]


def test_the_module_graph_is_read() -> None:
    """The walk finds the rooms and follows an import through a third module."""
    assert {"maasflow.daemon.loop", "maasflow.serve.app", "maasflow.sim.api"} <= set(modules())
    assert "maasflow.daemon.maas.models" in reach("maasflow.daemon.loop")
    assert any(in_room(n, "maasflow.common") for n in reach("maasflow.sim.api"))


def test_the_shared_rooms_depend_on_no_program() -> None:
    """maasflow/common/ is used by the daemon, serve and the simulator, and uses none of them."""
    assert strays("maasflow.common", ("maasflow.common", "maasflow.__version__")) == []


def test_the_maas_client_knows_nothing_of_the_daemon_above_it() -> None:
    """daemon/maas/ speaks HTTP to MAAS and nothing else: no filters, lifecycle or store."""
    allowed = ("maasflow.daemon.maas", "maasflow.common", "maasflow.__version__")
    assert strays("maasflow.daemon.maas", allowed) == []


def test_the_lifecycle_is_pure() -> None:
    """The lifecycle reaches neither HTTP, subprocesses, sockets nor asyncio, nor any layer."""
    io = ("httpx", "subprocess", "asyncio", "socket", "sqlite3")
    module = "maasflow.daemon.lifecycle"
    assert [n for n in sorted(reach(module)) if any(in_room(n, m) for m in io)] == []
    assert strays(module, ("maasflow.daemon.lifecycle", "maasflow.common")) == []


@pytest.mark.parametrize(
    ("room", "allowed"),
    [
        # maasflow.__version__ is one string (every `--version`), not logic to share.
        ("maasflow.sim", ("maasflow.sim", "maasflow.common", "maasflow.__version__")),
        ("maasflow.serve", ("maasflow.serve", "maasflow.common", "maasflow.__version__")),
        ("maasflow.daemon", ("maasflow.daemon", "maasflow.common", "maasflow.__version__")),
    ],
)
def test_each_program_uses_only_itself_and_the_shared_rooms(
    room: str, allowed: tuple[str, ...]
) -> None:
    """The simulator shares no logic with the daemon (the oracle stays independent), and serve
    and the daemon stand apart: a wrong status number cannot pass every test."""
    assert strays(room, allowed) == []

"""The layering of design.md holds: each layer imports only what it may.

Read from the source with `ast`, so a forbidden import fails here before it shapes the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "maasflow"


def imports_of(path: Path) -> set[str]:
    """Every module name a file imports, at any depth of its body."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(*parts: str) -> list[Path]:
    target = PACKAGE.joinpath(*parts)
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{p.relative_to(PACKAGE.parent)} imports {name}"
        for p in paths
        for name in sorted(imports_of(p))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_maas_client_knows_nothing_of_filters_lifecycle_or_provisioning() -> None:
    """maasflow/maas/ speaks HTTP to MAAS and nothing else."""
    forbidden = (
        "maasflow.lifecycle",
        "maasflow.filters",
        "maasflow.mappings",
        "maasflow.daemon",
        "maasflow.provisioning",
        "maasflow.store",
        "maasflow.actions",
        "maasflow.sim",
        "maasflow.service",
    )
    assert offending(files("maas"), forbidden) == []


def test_the_lifecycle_is_pure() -> None:
    """lifecycle.py imports neither HTTP, subprocess nor asyncio, nor the layers above it."""
    forbidden = (
        "httpx",
        "subprocess",
        "asyncio",
        "socket",
        "maasflow.maas.client",
        "maasflow.daemon",
        "maasflow.actions",
        "maasflow.provisioning",
        "maasflow.store",
    )
    assert offending(files("lifecycle.py"), forbidden) == []


@pytest.mark.parametrize(
    "module",
    [
        "lifecycle",
        "filters",
        "mappings",
        "daemon",
        "actions",
        "provisioning",
        "store",
        "settings",
        "executor",
        "maas",
    ],
)
def test_the_simulator_shares_no_logic_with_the_daemon(module: str) -> None:
    """The oracle is independent: a wrong status number cannot pass every test."""
    assert offending(files("sim"), (f"maasflow.{module}",)) == []


def test_the_service_does_not_reach_into_the_daemon() -> None:
    """`maasflow serve` stands alone: it may share errors and logging, not the daemon's logic."""
    forbidden = ("maasflow.daemon", "maasflow.lifecycle", "maasflow.actions", "maasflow.sim")
    assert offending(files("service"), forbidden) == []

"""The Prometheus registry each program starts from: its own, holding `maasflow_build_info`.

The daemon and `maasflow serve` each keep their series on a registry of their own (so
instances in one process, as in the tests and the demo, stay independent), and both export
the running version the same way. This module makes that registry; it defines no other series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge


def program_registry(version: str) -> CollectorRegistry:
    """A new registry holding `maasflow_build_info{version}` = 1."""
    registry = CollectorRegistry(auto_describe=True)
    build = Gauge(
        "maasflow_build_info", "The running maasflow's version (always 1).", ["version"],
        registry=registry,
    )  # fmt: skip
    build.labels(version=version).set(1)
    return registry

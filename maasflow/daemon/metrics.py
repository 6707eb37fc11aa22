"""Prometheus metrics of the daemon, on a registry of their own.

Every series is prefixed `maasflow_`. The daemon reports what happened through a few calls
(`observe_pass`, `observe_action`, `observe_request`, `observe_provision`; from the
lifecycle's phase listener, `observe_phase_entry` and `observe_resync`; for machines in
trouble, `observe_backing_off`, `observe_retry` and `observe_quarantine`; with several daemons
on one database, `observe_leader`; for control, `observe_paused`). `maasflow_build_info{version}`
is set once; `watch` makes `maasflow_actions_in_flight` and `maasflow_healthy` read the
daemon at each scrape. `render()` gives the exposition text that `/metrics` serves. A private
`CollectorRegistry` keeps instances independent (tests, the demo running several in one
process) and leaves the process-wide default registry alone.

Label values must stay few: `op` is a MAAS op name (`list`, `commission`, ...), never a
system_id; phase labels come from the lifecycle's closed `Phase` vocabulary. Per-pass gauges
(`machines`, `machines_by_phase`) are replaced wholesale after each successful pass and left
as they were after a failed one (the last known picture beats an empty one); a pass that
reports more than `MAX_SERIES` distinct values folds the rest into `other`, so a hostile MAAS
cannot blow up the series count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from maasflow import __version__
from maasflow.common.metric_registry import program_registry

MAX_SERIES = 64

_PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_ACTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_PROVISION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


class Metrics:
    """The daemon's counters, gauges and histograms, and their text rendering."""

    def __init__(self) -> None:
        self.registry = program_registry(__version__)
        self._pass_metrics()
        self._action_metrics()
        self._request_metrics()
        self._phase_metrics()
        self._trouble_metrics()
        self._process_metrics()

    def _pass_metrics(self) -> None:
        r = self.registry
        self.passes_total = Counter(
            "maasflow_passes", "Passes over the MAAS machine list.", ["outcome"], registry=r
        )
        self.pass_duration_seconds = Histogram(
            "maasflow_pass_duration_seconds",
            "Duration of one pass.",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.machines = Gauge(
            "maasflow_machines",
            "Selected machines by MAAS status, last pass.",
            ["status"],
            registry=r,
        )
        self.machines_by_phase = Gauge(
            "maasflow_machines_by_phase",
            "Selected machines by maasflow phase, last pass.",
            ["phase"],
            registry=r,
        )
        self.leader = Gauge(
            "maasflow_leader",
            "1 while this daemon acts (the leader, or the only daemon); 0 as a standby.",
            registry=r,
        )
        self.leader.set(1)
        self.last_pass_timestamp_seconds = Gauge(
            "maasflow_last_pass_timestamp_seconds", "Unix time the last pass ended.", registry=r
        )
        self.last_success_timestamp_seconds = Gauge(
            "maasflow_last_success_timestamp_seconds",
            "Unix time the last successful pass ended.",
            registry=r,
        )

    def _action_metrics(self) -> None:
        r = self.registry
        self.actions_total = Counter(
            "maasflow_actions", "Actions taken on machines.", ["kind", "outcome"], registry=r
        )
        self.action_duration_seconds = Histogram(
            "maasflow_action_duration_seconds",
            "Duration of one action.",
            ["kind"],
            buckets=_ACTION_BUCKETS,
            registry=r,
        )
        self.provision_duration_seconds = Histogram(
            "maasflow_provision_duration_seconds",
            "Duration of one provisioning attempt.",
            ["outcome"],
            buckets=_PROVISION_BUCKETS,
            registry=r,
        )

    def _request_metrics(self) -> None:
        r = self.registry
        self.maas_requests_total = Counter(
            "maasflow_maas_requests",
            'Requests to the MAAS API by HTTP status code ("error": no response).',
            ["method", "op", "code"],
            registry=r,
        )
        self.maas_request_duration_seconds = Histogram(
            "maasflow_maas_request_duration_seconds",
            "Latency of MAAS API requests.",
            ["method", "op"],
            registry=r,
        )

    def _phase_metrics(self) -> None:
        r = self.registry
        self.phase_entries_total = Counter(
            "maasflow_phase_entries",
            "Machines entering a maasflow phase (a machine's first observation included).",
            ["phase"],
            registry=r,
        )
        self.resyncs_total = Counter(
            "maasflow_resyncs",
            "Phase jumps the lifecycle's table does not declare (e.g. a person acted in MAAS).",
            ["from_phase", "to_phase"],
            registry=r,
        )

    def _trouble_metrics(self) -> None:
        r = self.registry
        self.machines_backing_off = Gauge(
            "maasflow_machines_backing_off",
            "Machines whose failing action waits out its backoff, last pass.",
            registry=r,
        )
        self.failed_retries_total = Counter(
            "maasflow_failed_machine_retries",
            "Retries of failed machines sent (-retry-failed), by action.",
            ["kind"],
            registry=r,
        )
        self.quarantines_total = Counter(
            "maasflow_quarantines",
            "Machines quarantined (tagged and left alone) after their retries ran out.",
            registry=r,
        )

    def _process_metrics(self) -> None:
        r = self.registry
        self.healthy = Gauge(
            "maasflow_healthy", "1 while /healthz answers healthy, else 0.", registry=r
        )
        self.actions_in_flight = Gauge(
            "maasflow_actions_in_flight", "Actions queued or running now.", registry=r
        )
        self.paused = Gauge(
            "maasflow_paused", "1 while paused (maasflow pause): no new actions.", registry=r
        )

    # -- what the daemon calls ------------------------------------------------------------

    def watch(self, in_flight: Callable[[], int], healthy: Callable[[], bool]) -> None:
        """Read the in-flight count and health at every scrape, from these callables."""
        self.actions_in_flight.set_function(lambda: float(in_flight()))
        self.healthy.set_function(lambda: 1.0 if healthy() else 0.0)

    def observe_paused(self, paused: bool) -> None:
        """The daemon was paused or resumed."""
        self.paused.set(1 if paused else 0)

    def observe_pass(
        self,
        duration: float,
        ok: bool,
        status_counts: Mapping[str, int],
        phase_counts: Mapping[str, int],
        now: float | None = None,
    ) -> None:
        """Count one pass; after a successful one, replace the per-status/phase gauges."""
        self.passes_total.labels(outcome="ok" if ok else "error").inc()
        self.pass_duration_seconds.observe(max(duration, 0.0))
        _set_now(self.last_pass_timestamp_seconds, now)
        if ok:
            _set_now(self.last_success_timestamp_seconds, now)
            _replace(self.machines, status_counts)
            _replace(self.machines_by_phase, phase_counts)

    def observe_action(self, kind: str, outcome: str, duration: float) -> None:
        """Count one action (commission, deploy, ...) and how it ended."""
        self.actions_total.labels(kind=kind, outcome=outcome).inc()
        self.action_duration_seconds.labels(kind=kind).observe(max(duration, 0.0))

    def observe_request(self, method: str, op: str, status: int | None, duration: float) -> None:
        """Count one MAAS API request; `status` None means no response (connection error)."""
        code = "error" if status is None else str(status)
        method = method.upper()
        self.maas_requests_total.labels(method=method, op=op, code=code).inc()
        self.maas_request_duration_seconds.labels(method=method, op=op).observe(max(duration, 0.0))

    def observe_provision(self, outcome: str, duration: float) -> None:
        """Record how long one provisioning attempt took and how it ended."""
        self.provision_duration_seconds.labels(outcome=outcome).observe(max(duration, 0.0))

    def observe_phase_entry(self, phase: str) -> None:
        """Count one machine entering `phase` (the lifecycle tells each entry once)."""
        self.phase_entries_total.labels(phase=phase).inc()

    def observe_resync(self, from_phase: str, to_phase: str) -> None:
        """Count one jump between phases that the lifecycle's table does not declare."""
        self.resyncs_total.labels(from_phase=from_phase, to_phase=to_phase).inc()

    def observe_backing_off(self, count: int) -> None:
        """How many machines wait out an action's backoff now."""
        self.machines_backing_off.set(count)

    def observe_retry(self, kind: str) -> None:
        """Count one retry of a failed machine (commission or release)."""
        self.failed_retries_total.labels(kind=kind).inc()

    def observe_quarantine(self) -> None:
        """Count one machine quarantined."""
        self.quarantines_total.inc()

    def observe_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _set_now(gauge: Gauge, now: float | None) -> None:
    if now is None:
        gauge.set_to_current_time()
    else:
        gauge.set(now)


def _replace(gauge: Gauge, counts: Mapping[str, int]) -> None:
    """Drop every series of `gauge`, then set one per key (at most MAX_SERIES, rest `other`)."""
    gauge.clear()
    folded: dict[str, int] = {}
    for key, count in counts.items():
        label = str(key) if len(folded) < MAX_SERIES or str(key) in folded else "other"
        folded[label] = folded.get(label, 0) + int(count)
    for label, count in folded.items():
        gauge.labels(label).set(count)

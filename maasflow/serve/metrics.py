"""Prometheus metrics of `maasflow serve`, on a registry of their own, served at `/metrics`.

    maasflow_build_info{version}                          the running version (always 1)
    maasflow_serve_jobs{state}                            provisioning jobs by state (pending,
                                                          running, complete, failed), read
                                                          from the record store at each scrape
    maasflow_serve_job_duration_seconds{outcome}          how long each job this service ran
                                                          took (complete or failed)
    maasflow_power_requests_total{backend,action,outcome} webhook power requests: backend
                                                          dli|command|wol ("none" when no
                                                          machine matched), action on|off|
                                                          query, outcome ok|refused|failed
    maasflow_power_acks_waiting                           power-offs waiting for a person

Refused is an answer in 4xx (auth, no such machine), failed one in 5xx (the backend failed
or timed out). Labels come from closed vocabularies, never a machine name, so the series
count stays small. The job pool and the power routes report through `observe_job` and
`observe_power`; the counts of jobs and acks are read when scraped (`watch_jobs`,
`watch_acks`). This module owns no route: the app mounts `render()`.
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

from maasflow.common.metric_registry import program_registry
from maasflow.serve.records import Status

_JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
JOB_STATES = tuple(status.name.lower() for status in Status)


class ServeMetrics:
    """The service's series and their text rendering."""

    def __init__(self, version: str) -> None:
        r = self.registry = program_registry(version)
        self.jobs = Gauge(
            "maasflow_serve_jobs", "Provisioning jobs by state.", ["state"], registry=r
        )
        self.job_duration_seconds = Histogram(
            "maasflow_serve_job_duration_seconds",
            "Duration of one provisioning job run by this service.",
            ["outcome"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.power_requests = Counter(
            "maasflow_power_requests",
            "Webhook power requests by backend, action and outcome.",
            ["backend", "action", "outcome"],
            registry=r,
        )
        self.acks_waiting = Gauge(
            "maasflow_power_acks_waiting", "Power-offs waiting for a person's ack.", registry=r
        )
        self._job_counts: Callable[[], Mapping[Status, int]] | None = None

    def watch_jobs(self, counts: Callable[[], Mapping[Status, int]]) -> None:
        """Read the jobs per state from `counts` at each scrape."""
        self._job_counts = counts

    def watch_acks(self, waiting: Callable[[], int]) -> None:
        """Read the power-offs waiting for an ack from `waiting` at each scrape."""
        self.acks_waiting.set_function(lambda: float(waiting()))

    def observe_job(self, outcome: Status, seconds: float) -> None:
        """One job this service ran ended with `outcome` after `seconds`."""
        self.job_duration_seconds.labels(outcome=outcome.name.lower()).observe(max(seconds, 0.0))

    def observe_power(self, backend: str, action: str, status: int) -> None:
        """One power request, answered with HTTP `status`."""
        outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
        self.power_requests.labels(backend=backend, action=action, outcome=outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition (jobs counted now) and its content type."""
        if self._job_counts is not None:
            counts = self._job_counts()
            for status in Status:
                self.jobs.labels(state=status.name.lower()).set(counts.get(status, 0))
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

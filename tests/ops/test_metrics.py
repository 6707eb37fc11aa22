"""The daemon's Prometheus metrics: what each observe_* call records and how it renders."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from maasflow.daemon.metrics import MAX_SERIES, Metrics


def _value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def _series(m: Metrics, name: str) -> dict[str, float]:
    """label value -> sample value, for a one-label gauge."""
    body, _ = m.render()
    return {
        next(iter(s.labels.values())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    }


def test_a_successful_pass_counts_and_sets_machine_gauges(metrics: Metrics) -> None:
    """observe_pass(ok) counts the pass, its duration and the machines per status and phase."""
    metrics.observe_pass(1.5, True, {"Ready": 3, "Deployed": 2}, {"allocating": 3}, now=100.0)
    assert _value(metrics, "maasflow_passes_total", outcome="ok") == 1
    assert _value(metrics, "maasflow_pass_duration_seconds_sum") == 1.5
    assert _series(metrics, "maasflow_machines") == {"Ready": 3, "Deployed": 2}
    assert _series(metrics, "maasflow_machines_by_phase") == {"allocating": 3}
    assert _value(metrics, "maasflow_last_pass_timestamp_seconds") == 100.0
    assert _value(metrics, "maasflow_last_success_timestamp_seconds") == 100.0


def test_the_next_successful_pass_replaces_the_gauges(metrics: Metrics) -> None:
    """A status no machine has any more disappears instead of keeping its old count."""
    metrics.observe_pass(1.0, True, {"Ready": 3, "New": 1}, {"new": 1}, now=1.0)
    metrics.observe_pass(1.0, True, {"Ready": 4}, {"ready": 4}, now=2.0)
    assert _series(metrics, "maasflow_machines") == {"Ready": 4}
    assert _series(metrics, "maasflow_machines_by_phase") == {"ready": 4}


def test_a_failed_pass_keeps_the_last_known_machine_counts(metrics: Metrics) -> None:
    """observe_pass(ok=False) counts an error and leaves gauges and last success alone."""
    metrics.observe_pass(1.0, True, {"Ready": 3}, {"ready": 3}, now=10.0)
    metrics.observe_pass(0.2, False, {}, {}, now=20.0)
    assert _value(metrics, "maasflow_passes_total", outcome="error") == 1
    assert _series(metrics, "maasflow_machines") == {"Ready": 3}
    assert _value(metrics, "maasflow_last_pass_timestamp_seconds") == 20.0
    assert _value(metrics, "maasflow_last_success_timestamp_seconds") == 10.0


def test_requests_are_counted_by_method_op_and_status_code(metrics: Metrics) -> None:
    """observe_request labels by HTTP code, "error" when there was no response at all."""
    metrics.observe_request("get", "list", 200, 0.3)
    metrics.observe_request("POST", "commission", 403, 0.1)
    metrics.observe_request("POST", "commission", None, 5.0)
    assert _value(metrics, "maasflow_maas_requests_total", method="GET", op="list", code="200") == 1
    labels = {"method": "POST", "op": "commission"}
    assert _value(metrics, "maasflow_maas_requests_total", **labels, code="403") == 1
    assert _value(metrics, "maasflow_maas_requests_total", **labels, code="error") == 1
    assert _value(metrics, "maasflow_maas_request_duration_seconds_count", **labels) == 2
    assert _value(metrics, "maasflow_maas_request_duration_seconds_sum", **labels) == 5.1


def test_actions_and_provisioning_are_counted_with_their_durations(metrics: Metrics) -> None:
    """observe_action and observe_provision feed counters and histograms by kind and outcome."""
    metrics.observe_action("deploy", "ok", 2.0)
    metrics.observe_action("deploy", "failed", 1.0)
    metrics.observe_provision("complete", 600.0)
    assert _value(metrics, "maasflow_actions_total", kind="deploy", outcome="ok") == 1
    assert _value(metrics, "maasflow_actions_total", kind="deploy", outcome="failed") == 1
    assert _value(metrics, "maasflow_action_duration_seconds_count", kind="deploy") == 2
    count = _value(metrics, "maasflow_provision_duration_seconds_count", outcome="complete")
    assert count == 1
    le_600 = "maasflow_provision_duration_seconds_bucket"
    assert _value(metrics, le_600, outcome="complete", le="600.0") == 1


def test_render_gives_prometheus_text_and_its_content_type(metrics: Metrics) -> None:
    """render() returns the text exposition format, parseable, with every metric family."""
    metrics.observe_pass(1.0, True, {"Ready": 1}, {"ready": 1})
    body, content_type = metrics.render()
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert content_type.startswith("text/plain")
    assert {
        "maasflow_passes",
        "maasflow_pass_duration_seconds",
        "maasflow_machines",
        "maasflow_machines_by_phase",
        "maasflow_actions",
        "maasflow_action_duration_seconds",
        "maasflow_maas_requests",
        "maasflow_maas_request_duration_seconds",
        "maasflow_provision_duration_seconds",
        "maasflow_last_pass_timestamp_seconds",
    } <= names


def test_instances_are_independent_and_stay_off_the_global_registry() -> None:
    """Two Metrics do not share counts, and neither registers in prometheus' default registry."""
    first, second = Metrics(), Metrics()
    first.observe_action("commission", "ok", 1.0)
    assert _value(second, "maasflow_actions_total", kind="commission", outcome="ok") is None
    assert REGISTRY.get_sample_value("maasflow_actions_total", {"kind": "commission"}) is None


def test_hostile_label_values_are_escaped(metrics: Metrics) -> None:
    """Quotes, backslashes and newlines in a status name still render parseable text."""
    evil = 'Ready"} 1\nmaasflow_fake 9\\'
    metrics.observe_pass(1.0, True, {evil: 2}, {})
    assert _series(metrics, "maasflow_machines") == {evil: 2}


def test_too_many_distinct_statuses_are_folded_into_other(metrics: Metrics) -> None:
    """More than MAX_SERIES label values per pass cap the series; the total is preserved."""
    counts = {f"status-{i}": 1 for i in range(MAX_SERIES + 50)}
    metrics.observe_pass(1.0, True, counts, {})
    series = _series(metrics, "maasflow_machines")
    assert len(series) == MAX_SERIES + 1
    assert series["other"] == 50
    assert sum(series.values()) == MAX_SERIES + 50

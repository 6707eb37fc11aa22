"""`maasflow serve`'s /metrics over real HTTP: jobs by state, job durations, the version."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from maasflow import __version__
from maasflow.serve import ServiceConfig


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from a Prometheus exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_jobs_by_state_and_time_the_finished_ones(kit: Any) -> None:
    """A complete, a failed and a running job show in the state gauge; two durations observed."""
    ok = kit.script("ok.sh", "exit 0\n")
    gated = kit.gated_script("slow.sh")
    config = ServiceConfig(
        role_scripts={"ok": ok, "slow": gated},
        allowed_scripts={"bad": kit.script("bad.sh", "exit 3\n")},
    )
    async with kit.running(config) as client:
        await client.post("/provision/", json=kit.machine("a", role="ok"))
        await client.post("/provision/", json=kit.machine("b", script="bad"))
        await kit.wait_record(client, "a", 2)
        await kit.wait_record(client, "b", 3)
        await client.post("/provision/", json=kit.machine("c", role="slow"))
        await kit.wait_until(lambda: kit.runs("slow.sh"), "the slow script to start")
        response = await client.get("/metrics")
        kit.release("slow.sh")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    jobs = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "maasflow_serve_jobs"}
    assert jobs == {"pending": 0, "running": 1, "complete": 1, "failed": 1}
    count = "maasflow_serve_job_duration_seconds_count"
    assert got[(count, (("outcome", "complete"),))] == 1
    assert got[(count, (("outcome", "failed"),))] == 1
    assert got[("maasflow_build_info", (("version", __version__),))] == 1


async def test_metrics_are_not_in_the_published_schema(kit: Any) -> None:
    """/metrics is text for Prometheus, not an API operation: /openapi.json leaves it out."""
    async with kit.running(ServiceConfig()) as client:
        schema = (await client.get("/openapi.json")).json()
        assert (await client.get("/metrics")).status_code == 200
    assert "/metrics" not in schema["paths"]

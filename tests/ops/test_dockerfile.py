"""The Dockerfile, checked without a docker engine: it parses, its images are pinned, it runs
as a non-root user, and its builder steps really install maasflow in a fresh virtualenv."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from maasflow.daemon.telemetry import Health

REPO = Path(__file__).resolve().parents[2]
KNOWN = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (as docker reads it)."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit inside a continued instruction too
        start = start if pending else number
        pending.append(line[:-1].rstrip() if line.endswith("\\") else line)
        if not line.endswith("\\"):
            keyword, _, value = " ".join(pending).partition(" ")
            out.append(Instruction(keyword, value.strip(), start))
            pending = []
    if pending:
        raise ValueError(f"line {start}: continuation runs past the end of the file")
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def pairs(value: str) -> dict[str, str]:
    """`K=v K2="v 2"` (ENV and LABEL key=value form) as a dict."""
    return dict(word.split("=", 1) for word in shlex.split(value))


def find(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [ins for ins in stage if ins.keyword == keyword]


@pytest.fixture(scope="module")
def dockerfile() -> list[list[Instruction]]:
    return stages(parse_dockerfile((REPO / "Dockerfile").read_text()))


def test_parser_joins_continuations_and_skips_comments() -> None:
    """The test's own parser reads instructions the way docker does."""
    text = "# syntax=docker/dockerfile:1\nFROM a:1 AS b\nRUN x \\\n  # note\n  && y\nUSER 1\n"
    assert parse_dockerfile(text) == [
        Instruction("FROM", "a:1 AS b", 2),
        Instruction("RUN", "x && y", 3),
        Instruction("USER", "1", 6),
    ]
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("RUN a \\\n")


def test_every_instruction_is_a_known_upper_case_keyword(
    dockerfile: list[list[Instruction]],
) -> None:
    """Nothing but Dockerfile instructions, and at least a builder and a runtime stage."""
    keywords = {ins.keyword for stage in dockerfile for ins in stage}
    assert keywords <= KNOWN
    assert len(dockerfile) >= 2


def test_base_images_are_slim_python_pinned_by_tag(dockerfile: list[list[Instruction]]) -> None:
    """Every FROM names python:<version>-slim-<distro>, never latest or an untagged image."""
    for stage in dockerfile:
        image = stage[0].value.split()[0]
        name, _, tag = image.partition(":")
        assert name == "python" and tag and tag != "latest", image
        assert re.fullmatch(r"3\.\d+-slim-[a-z]+", tag), image


def test_runtime_runs_maasflow_under_tini_through_the_entrypoint(
    dockerfile: list[list[Instruction]],
) -> None:
    """PID 1 is Debian's tini (it reaps orphans), which runs the entrypoint that drops root
    and execs maasflow; ENTRYPOINT and CMD are in exec form; no USER root is set."""
    runtime = dockerfile[-1]
    assert [ins.value.split(":")[0] for ins in find(runtime, "USER")] in ([], ["10001"])
    assert json.loads(find(runtime, "ENTRYPOINT")[-1].value) == [
        "/usr/bin/tini", "--", "/usr/local/bin/maasflow-entrypoint"
    ]  # fmt: skip
    assert json.loads(find(runtime, "CMD")[-1].value) == []
    runs = " ".join(ins.value for ins in find(runtime, "RUN"))
    assert re.search(r"apt-get install -y --no-install-recommends tini\b", runs)
    copies = [ins.value for ins in find(runtime, "COPY")]
    assert "packaging/docker-entrypoint.sh /usr/local/bin/maasflow-entrypoint" in copies
    entrypoint = (REPO / "packaging" / "docker-entrypoint.sh").read_text()
    assert 'exec setpriv --reuid="$user" --regid="$user" --clear-groups' in entrypoint
    assert os.access(REPO / "packaging" / "docker-entrypoint.sh", os.X_OK)


def test_runtime_has_healthcheck_labels_port_and_stop_signal(
    dockerfile: list[list[Instruction]],
) -> None:
    """HEALTHCHECK asks /healthz via maasflow; OCI labels, EXPOSE 9410, STOPSIGNAL SIGTERM."""
    runtime = dockerfile[-1]
    (health,) = find(runtime, "HEALTHCHECK")
    command = json.loads(health.value.split(" CMD ", 1)[1])
    assert command[:3] == ["maasflow", "status", "--healthz"]
    labels = {k: v for ins in find(runtime, "LABEL") for k, v in pairs(ins.value).items()}
    for key in ("title", "description", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert [ins.value for ins in find(runtime, "EXPOSE")] == ["9410"]
    assert [ins.value for ins in find(runtime, "STOPSIGNAL")] == ["SIGTERM"]


def test_runtime_listens_on_loopback_and_reads_the_key_from_both_secret_paths(
    dockerfile: list[list[Instruction]],
) -> None:
    """LISTEN=127.0.0.1:9410 (the health check and `docker exec` reach it; the README says how
    to publish it); the key file is /secrets/..., which links to /run/secrets."""
    runtime = dockerfile[-1]
    env = {k: v for ins in find(runtime, "ENV") for k, v in pairs(ins.value).items()}
    assert env["LISTEN"] == "127.0.0.1:9410"
    assert env["MAAS_API_KEY_FILE"] == "/secrets/maas_api_key"
    assert env["MAASFLOW_STATUS_URL"] == "http://127.0.0.1:9410"
    runs = " ".join(ins.value for ins in find(runtime, "RUN"))
    assert "ln -s /run/secrets /secrets" in runs
    readme = (REPO / "README.md").read_text()
    docker_section = readme.split("### docker", 1)[1].split("\n## ", 1)[0]
    assert "-e LISTEN=0.0.0.0:9410 -p 127.0.0.1:9410:9410" in docker_section


def test_dependencies_are_installed_before_the_code_is_copied(
    dockerfile: list[list[Instruction]],
) -> None:
    """Layer caching: the dependency install runs before maasflow/ is copied in."""
    builder = dockerfile[0]
    order = [(ins.keyword, ins.value) for ins in builder]
    copy_code = order.index(("COPY", "maasflow ./maasflow"))
    install_deps = next(i for i, (k, v) in enumerate(order) if k == "RUN" and "requirements" in v)
    assert install_deps < copy_code
    assert all("maasflow" not in v.split()[0] for k, v in order[:install_deps] if k == "COPY")


def test_copied_files_exist_and_are_in_the_build_context(
    dockerfile: list[list[Instruction]],
) -> None:
    """Every COPY source exists in the repo and .dockerignore's allow-list lets it through."""
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for stage in dockerfile:
        for ins in find(stage, "COPY"):
            if ins.value.startswith("--from="):
                continue
            *sources, _dest = ins.value.split()
            for source in sources:
                assert (REPO / source).exists(), f"line {ins.line}: {source} missing"
                assert source.rstrip("/") in allowed, f".dockerignore excludes {source}"


def test_runtime_copies_the_builders_virtualenv(dockerfile: list[list[Instruction]]) -> None:
    """The runtime copies the builder's VIRTUAL_ENV and puts its bin first on PATH."""
    builder_env = {k: v for ins in find(dockerfile[0], "ENV") for k, v in pairs(ins.value).items()}
    venv = builder_env["VIRTUAL_ENV"]
    runtime = dockerfile[-1]
    assert any(ins.value == f"--from=builder {venv} {venv}" for ins in find(runtime, "COPY"))
    env = {k: v for ins in find(runtime, "ENV") for k, v in pairs(ins.value).items()}
    assert env["PATH"].startswith(f"{venv}/bin:")


def test_the_state_directory_is_a_volume_the_readme_example_mounts(
    dockerfile: list[list[Instruction]],
) -> None:
    """STATE_DIRECTORY is a VOLUME, and the README's docker run keeps it in a named volume:
    a container without its records would provision every Deployed machine again."""
    runtime = dockerfile[-1]
    env = {k: v for ins in find(runtime, "ENV") for k, v in pairs(ins.value).items()}
    state = env["STATE_DIRECTORY"]
    volumes = [path for ins in find(runtime, "VOLUME") for path in json.loads(ins.value)]
    assert volumes == [state]
    readme = (REPO / "README.md").read_text()
    docker_section = readme.split("### docker", 1)[1].split("\n## ", 1)[0]
    example = docker_section.split("```sh", 1)[1].split("```", 1)[0]
    assert re.search(rf"-v [\w.-]+:{re.escape(state)}(\s|\\)", example)


# -- the slow one: run the builder's steps for real ---------------------------------------

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _expand(value: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _copy_in(value: str, src: Path) -> None:
    *sources, dest = value.split()
    for source in sources:
        target = src / dest if dest not in {".", "./"} else src / Path(source).name
        if (REPO / source).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(REPO / source, target, ignore=ignore)
        else:
            shutil.copy2(REPO / source, target)


def _run_builder(builder: list[Instruction], src: Path, venv: Path) -> dict[str, str]:
    """Replay WORKDIR-relative COPY, ENV and RUN steps with VIRTUAL_ENV in tmp; the final env."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    for ins in builder:
        if ins.keyword == "ENV":
            for key, value in pairs(ins.value).items():
                if key != "PIP_NO_CACHE_DIR":  # a layer-size trick; the pip cache speeds this up
                    env[key] = str(venv) if key == "VIRTUAL_ENV" else _expand(value, env)
        elif ins.keyword == "COPY":
            _copy_in(ins.value, src)
        elif ins.keyword == "RUN":
            done = subprocess.run(
                ["/bin/sh", "-c", ins.value], cwd=src, env=env, capture_output=True, text=True,
                timeout=900, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"RUN line {ins.line} failed:\n{done.stderr[-3000:]}"
    return env


async def test_builder_install_steps_work_in_a_fresh_virtualenv_and_healthcheck_runs(
    dockerfile: list[list[Instruction]], tmp_path: Path, telemetry_url: str, health: Health
) -> None:
    """Slow (pip downloads): the builder's RUN steps build a working maasflow in a new venv,
    and the image's HEALTHCHECK command, run from it, follows /healthz (1, then 0)."""
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    env = await asyncio.to_thread(_run_builder, dockerfile[0], src, venv)
    assert (venv / "bin" / "maasflow").exists()
    (health_ins,) = find(dockerfile[-1], "HEALTHCHECK")
    argv = json.loads(health_ins.value.split(" CMD ", 1)[1])
    env["MAASFLOW_STATUS_URL"] = telemetry_url
    codes = []
    for _ in range(2):
        proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=tmp_path)
        codes.append(await asyncio.wait_for(proc.wait(), 60))
        health.pass_ok()
    assert codes == [1, 0]

"""The README stays true: its configuration table, its two commands and the sample files."""

from __future__ import annotations

import re
from pathlib import Path

from maasflow.daemon.flags import render_reference_markdown

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
START, END = "<!-- settings-reference:start -->", "<!-- settings-reference:end -->"


def reference_block() -> str:
    return README.split(START, 1)[1].split(END, 1)[0].strip()


def test_the_configuration_table_is_the_one_the_settings_model_renders() -> None:
    """Regenerate with: python -m maasflow.readme (rewrites the block between the markers)."""
    assert reference_block() == render_reference_markdown().strip()


def test_every_environment_variable_in_the_readme_table_is_one_the_settings_read() -> None:
    """No env var is documented that the code does not know."""
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", reference_block()))
    rendered = set(re.findall(r"`([A-Z][A-Z_]+)`", render_reference_markdown()))
    assert documented == rendered
    assert {"MAAS_URL", "MAAS_API_KEY", "HOST_FILTER_SPEC", "PROVISION_URL"} <= documented


def test_the_readme_gives_exactly_two_set_up_commands_and_ci_runs_the_test_one() -> None:
    """`./dev demo` and `./dev test` are the quick start; .ci/run calls the test command."""
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["./dev demo", "./dev test"]
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()


def test_files_the_readme_names_exist() -> None:
    """Every repository path the README points to is really there."""
    for path in (
        "filters/default.json",
        "filters/README.md",
        "mappings.json",
        "power.example.json",
        "systemd/maasflow.service",
        "systemd/maasflow-serve.service",
        "systemd/maasflow.default",
        "Dockerfile",
        "constraints.txt",
        "packaging/install.sh",
        "packaging/docker-entrypoint.sh",
        ".ci/run",
        "dev",
    ):
        assert (ROOT / path).exists(), path


def help_texts() -> str:
    """Every sub-command's --help, as one text."""
    import contextlib
    import io

    from maasflow.cli import SUBCOMMANDS, main

    texts = []
    for command in SUBCOMMANDS:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([command, "--help"])
        texts.append(out.getvalue())
    return "\n".join(texts)


def test_every_double_dash_flag_the_readme_names_exists() -> None:
    """`--workers`, `--power-token-file`, `--healthz`...: each is a real sub-command flag."""
    external = {"--username", "--name"}  # `maas apikey --username`, `docker run --name`
    external |= {"--now", "--offline"}  # `systemctl enable --now`, `systemd-analyze security`
    external |= {"--root", "--wheel"}  # packaging/install.sh's, checked below
    install = (ROOT / "packaging" / "install.sh").read_text()
    assert all(f"{flag})" in install or f"{flag}|" in install for flag in ("--root", "--wheel"))
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*[a-z])", README)) - external
    helps = help_texts()
    missing = sorted(flag for flag in named if flag not in helps)
    assert missing == []
    assert len(named) > 10  # the search itself works

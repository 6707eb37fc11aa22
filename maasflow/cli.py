"""The `maasflow` command: sub-command dispatch and the one-line error contract.

`maasflow [flags]` runs the daemon (maas-flow's Go-style flags, see `daemon/flags.py`);
`maasflow <sub-command> ...` runs one of the tools below. Every sub-command is a function
`(argv: list[str]) -> int`: its module's `main`, or the one named after a colon.
`maasflow -h` (wherever Go's flag parser would see the help flag) prints the sub-commands,
then the daemon's flags; `maasflow --version` (or `-version`, and `--version` after any
sub-command) prints `maasflow <version>`. Whatever the command, a `ConfigError` becomes one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from maasflow.common.command_parser import VERSION_LINE
from maasflow.common.errors import ConfigError
from maasflow.daemon.flags import help_requested, help_text

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("maasflow.sim.cli", "run the built-in MAAS simulator"),
    "serve": ("maasflow.serve.cli", "run the provisioning service and webhook power target"),
    "power-config": ("maasflow.serve.power_config", "print MAAS power parameters for a machine"),
    "demo": ("maasflow.demo", "simulator + service + daemon on loopback, with a live view"),
    "status": ("maasflow.daemon.report", "show what the daemon knows about each machine"),
    "enlist": (
        "maasflow.daemon.enlist",
        "record machines that already run in MAAS as Deployed (MAAS 3.1+)",
    ),
    "migrate-store": (
        "maasflow.daemon.store_transfer",
        "move the daemon's records from SQLite into PostgreSQL",
    ),
    "pause": ("maasflow.daemon.control_client:pause", "pause the daemon: no new actions"),
    "resume": ("maasflow.daemon.control_client:resume", "resume a paused daemon"),
    "retry": ("maasflow.daemon.control_client:retry", "retry one machine at the next pass"),
    "desire": (
        "maasflow.daemon.desire_client:main",
        "show, set or clear a machine's desired state",
    ),
}


VERSION_FLAGS = frozenset({"--version", "-version"})


def _load(name: str) -> Callable[[list[str]], int]:
    module_name, _, function = SUBCOMMANDS[name][0].partition(":")
    entry: Callable[[list[str]], int] = getattr(
        importlib.import_module(module_name), function or "main"
    )
    return entry


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in SUBCOMMANDS:
            return _load(args[0])(args[1:])
        if VERSION_FLAGS.intersection(args):
            print(VERSION_LINE)
            return 0
        if help_requested(args):
            sys.stdout.write(help_text({name: text for name, (_, text) in SUBCOMMANDS.items()}))
            return 0
        from maasflow.daemon.cli import main as daemon_main

        return daemon_main(args)
    except ConfigError as exc:
        print(f"maasflow: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`maasflow demo | head`): quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141

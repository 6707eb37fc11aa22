"""`CommandParser`: argparse for maasflow's sub-commands, with the one-line error contract.

argparse prints its usage and exits on a bad flag; maasflow's rule is one line naming the
input and how to fix it, exit status 2, no traceback. This parser raises `ConfigError`
instead, which `maasflow.cli` prints as that line. (The daemon's own Go-style flags have
their own parser in `maasflow.daemon.flags`.) Every sub-command also answers `--version`
with maasflow's version, as `maasflow --version` does.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from maasflow import __version__
from maasflow.common.errors import ConfigError

VERSION_LINE = f"maasflow {__version__}"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are ConfigErrors pointing at `<prog> --help`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=VERSION_LINE)

    def error(self, message: str) -> NoReturn:
        name = self.prog.removeprefix("maasflow ")  # the CLI prefixes "maasflow: " itself
        raise ConfigError(f"{name}: {message} (see `{self.prog} --help`)")

"""`CommandParser`: argparse for maasflow's sub-commands, with the one-line error contract.

argparse prints its usage and exits on a bad flag; maasflow's rule is one line naming the
input and how to fix it, exit status 2, no traceback. This parser raises `ConfigError`
instead, which `maasflow.cli` prints as that line. (The daemon's own Go-style flags have
their own parser in `maasflow.daemon.flags`.)
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from maasflow.common.errors import ConfigError


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are ConfigErrors pointing at `<prog> --help`."""

    def error(self, message: str) -> NoReturn:
        name = self.prog.removeprefix("maasflow ")  # the CLI prefixes "maasflow: " itself
        raise ConfigError(f"{name}: {message} (see `{self.prog} --help`)")

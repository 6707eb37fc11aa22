"""`maasflow desire <machine> [fields] [--clear]`: read or set a machine's desired state.

With no field flag it shows the machine's desire (`GET /machines/<machine>/desired`): the
stored one with when and by whom, else the one the rules give. Field flags (`--target`,
`--distro`, `--power`, `--erase`, `--quick-erase`, `--secure-erase`, `--release`,
`--redeploy`, `--user-data-file`) make one desire, checked here by `Desire.parse` before
anything is sent, and `PUT` it whole: it replaces the stored one, it is not merged with it.
`--clear` deletes it (`DELETE`): the rules decide again. The daemon's routes are
`daemon.desire_api`; the URL, token file and timeout work as for `maasflow pause`
(`daemon.control_client`), the token file defaulting to `$DESIRE_TOKEN_FILE`, else
`$CONTROL_TOKEN_FILE`. `--by NAME` is recorded as who asked.

Exit status: 0 done; 1 the daemon could not be reached or refused (401, 403, 404 no such
machine, 409 maasflow cannot touch it: the line says why); 2 bad input (a bad flag or
value, an unreadable user-data file, no token file, or the daemon's 400). The token and
the user data never appear in output.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from maasflow.common.errors import ConfigError
from maasflow.common.safe_text import escape
from maasflow.common.text_file import read_capped_text
from maasflow.daemon import control_client
from maasflow.daemon.desire import MAX_USER_DATA, Desire, Power
from maasflow.daemon.lifecycle import Target
from maasflow.daemon.stored_desire import summary

TOKEN_ENV = "DESIRE_TOKEN_FILE"  # noqa: S105  # a variable's name, not a secret
_ERASE = ("erase", "quick_erase", "secure_erase")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.machine:
        raise ConfigError("desire: name the machine: maasflow desire <hostname or system_id>")
    raw = _fields(args)
    if args.clear and raw:
        raise ConfigError("--clear: give it alone, without field flags")
    path = "/machines/" + quote(args.machine, safe="") + "/desired"
    if args.clear:
        return control_client.done(_send(args, "DELETE", path), _cleared)
    if not raw:
        return control_client.done(_send(args, "GET", path), _shown)
    Desire.parse(raw, "desire")  # a bad combination is named here, before anything is sent
    return control_client.done(_send(args, "PUT", path, raw), _shown)


def _parser() -> argparse.ArgumentParser:
    p = control_client.parser(
        "desire", "Show, set or clear a machine's desired state.", TOKEN_ENV, "-desire-token-file"
    )
    p.set_defaults(token_file=os.environ.get(TOKEN_ENV) or os.environ.get(control_client.TOKEN_ENV))
    p.add_argument("machine", nargs="?", help="hostname or system_id")
    p.add_argument("--target", type=str.lower, choices=[str(t) for t in Target],
                   help="what it should be (default deployed)")  # fmt: skip
    p.add_argument("--distro", metavar="SERIES", help="deploy distro_series: jammy, ubuntu/jammy")
    p.add_argument("--power", type=str.lower, choices=[str(p) for p in Power],
                   help="a Deployed machine's power")  # fmt: skip
    for name in _ERASE:
        flag = name.replace("_", "-")
        p.add_argument(f"--{flag}", action="store_true", help=f"release (Ready) with {name}")
    p.add_argument("--release", action="store_true", help="release (Ready) without erasing")
    p.add_argument("--redeploy", action="store_true", help="redeploy when deploy fields change")
    p.add_argument("--user-data-file", type=Path, metavar="FILE", help="cloud-init user data")
    p.add_argument("--clear", action="store_true", help="forget the stored desire: the rules")
    who = f"{os.environ.get('USER') or 'someone'} via maasflow desire"
    p.add_argument(
        "--by", default=who, help="who asks, recorded in its history (default %(default)s)"
    )
    return p


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The desire the flags describe, in `Desire.parse`'s shape; empty for none."""
    raw: dict[str, Any] = {}
    for flag, field in (("target", "target"), ("distro", "distro_series"), ("power", "power")):
        if getattr(args, flag) is not None:
            raw[field] = getattr(args, flag)
    erase = {name: True for name in _ERASE if getattr(args, name)}
    if erase or args.release:
        raw["release"] = erase
    if args.redeploy:
        raw["redeploy"] = True
    if args.user_data_file is not None:
        raw["user_data"] = _user_data(args.user_data_file)
    return raw


def _user_data(path: Path) -> str:
    return read_capped_text(path.expanduser(), "--user-data-file", MAX_USER_DATA)


def _send(
    args: argparse.Namespace, method: str, path: str, body: Any = None
) -> httpx.Response | str:
    answer = control_client.send(
        args, method, path, body=body, headers={"X-Maasflow-By": args.by},
        token_env=TOKEN_ENV, what="desired-state token",
    )  # fmt: skip
    if isinstance(answer, httpx.Response) and answer.status_code == 400:
        raise ConfigError(f"the daemon refused it: {_error(answer)}")
    return answer


def _error(answer: httpx.Response) -> str:
    try:
        return escape(str(answer.json().get("error")))
    except (ValueError, AttributeError):
        return escape(answer.text[:200])


def _shown(doc: dict[str, Any]) -> str:
    name = f"{doc.get('hostname')} ({doc.get('system_id')})"
    desire = doc.get("desire")
    what = "none (the filters leave it out)" if desire is None else summary(desire)
    line = f"{name}: {doc.get('source')} desire: {what}"
    if doc.get("source") == "api":
        line += f"; set by {doc.get('set_by')}"
    if doc.get("untouchable"):
        line += f"; maasflow cannot touch it: {doc['untouchable']}"
    return escape(line)


def _cleared(doc: dict[str, Any]) -> str:
    name = f"{doc.get('hostname')} ({doc.get('system_id')})"
    if doc.get("deleted"):
        return escape(f"{name}: stored desire cleared; the rules decide from the next pass")
    return escape(f"{name}: no stored desire; the rules decide")

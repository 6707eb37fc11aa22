"""`maasflow pause`, `maasflow resume`, `maasflow retry <machine>`: switch a running daemon.

Each sends one POST to the daemon's control routes (`daemon.control`) at `--url` (default
`$MAASFLOW_STATUS_URL` or http://127.0.0.1:9410, as `maasflow status`), with `Authorization:
Bearer <token>` read from `--token-file` (default `$CONTROL_TOKEN_FILE`, the file the daemon
reads) by `maasflow.common.bearer`. It prints one line saying what the daemon did.

`parser`, `send` and `done` serve `maasflow desire` (`daemon.desire_client`) too: one way to
reach the daemon's guarded routes.

Exit status: 0 done; 1 the daemon could not be reached or refused (401 wrong token, 403
control off, 404 no such machine: the line says which and why); 2 bad input (no token file,
an unreadable one, a bad URL). The token never appears in output or errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from maasflow.common.bearer import read_token_file
from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.options import Bound, duration_type
from maasflow.common.safe_text import escape
from maasflow.daemon.report import DEFAULT_URL, endpoint

TOKEN_ENV = "CONTROL_TOKEN_FILE"  # noqa: S105  # a variable's name, not a secret


def pause(argv: list[str]) -> int:
    """`maasflow pause`: no new MAAS writes or provisioning starts until resumed."""
    args = parser("pause", "Pause the daemon: running actions finish, none start.").parse_args(argv)
    answer = _post(args, "/control/pause")
    return done(answer, lambda _doc: "paused: no new MAAS writes or provisioning starts")


def resume(argv: list[str]) -> int:
    """`maasflow resume`: act again from the next pass."""
    args = parser("resume", "Resume a paused daemon.").parse_args(argv)
    answer = _post(args, "/control/resume")
    return done(answer, lambda _doc: "resumed: the next pass acts again")


def retry(argv: list[str]) -> int:
    """`maasflow retry <machine>`: clear a machine's backoff and budget; the next pass tries it."""
    p = parser("retry", "Retry one machine at the daemon's next pass.")
    p.add_argument("machine", nargs="?", help="hostname or system_id")
    args = p.parse_args(argv)
    if not args.machine:
        raise ConfigError("retry: name the machine: maasflow retry <hostname or system_id>")
    answer = _post(args, "/control/retry/" + quote(args.machine, safe=""))
    return done(answer, _retried)


def parser(
    name: str,
    description: str,
    token_env: str = TOKEN_ENV,
    token_of: str = "-control-token-file",  # noqa: S107  # a flag's name, not a secret
) -> argparse.ArgumentParser:
    """A command's parser with the options every client of the daemon's routes takes:
    --url, --token-file (default `$token_env`, holding the token of `token_of`), --timeout."""
    p = CommandParser(prog=f"maasflow {name}", description=description)
    p.add_argument(
        "--url",
        default=os.environ.get("MAASFLOW_STATUS_URL", DEFAULT_URL),
        help="the daemon's -listen endpoint (env MAASFLOW_STATUS_URL; default %(default)s)",
    )
    p.add_argument(
        "--token-file",
        default=os.environ.get(token_env),
        help=f"file holding the daemon's {token_of} token (env {token_env})",
    )
    p.add_argument(
        "--timeout", type=duration_type(Bound.POSITIVE), default=5.0, help="HTTP timeout (5s)"
    )
    return p


def _post(args: argparse.Namespace, path: str) -> httpx.Response | str:
    """The daemon's answer, or why there is none (a line for stderr)."""
    return send(args, "POST", path)


def send(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    token_env: str = TOKEN_ENV,
    what: str = "control token",
) -> httpx.Response | str:
    """`method path` to the daemon at `args.url` with the token (`what`) of
    `args.token_file`: its answer, or why there is none (a line for stderr). ConfigError
    for bad input."""
    if not args.token_file:
        raise ConfigError(f"--token-file: give the file holding the {what} (or {token_env})")
    token = read_token_file(Path(args.token_file), "--token-file", what)
    url = endpoint(args.url, path)
    try:
        return httpx.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
            timeout=args.timeout,
            trust_env=False,
        )
    except httpx.InvalidURL as exc:
        raise ConfigError(f"--url: {exc}") from None
    except httpx.HTTPError as exc:
        return f"cannot reach the maasflow daemon at {url} ({type(exc).__name__}: {exc})"


def done(answer: httpx.Response | str, say: Any) -> int:
    """Print `say(document)` for a 200 JSON answer (0); else the reason on stderr (1)."""
    if isinstance(answer, str):
        print(f"maasflow: {answer}", file=sys.stderr)
        return 1
    try:
        doc = answer.json()
    except ValueError:
        doc = None
    if answer.status_code != 200 or not isinstance(doc, dict):
        why = doc.get("error") if isinstance(doc, dict) else None
        reason = escape(str(why or answer.text[:200]))
        print(f"maasflow: the daemon answered HTTP {answer.status_code}: {reason}", file=sys.stderr)
        return 1
    print(say(doc))
    return 0


def _retried(doc: dict[str, Any]) -> str:
    cleared = ", ".join(str(c) for c in doc.get("cleared") or []) or "nothing held it back"
    line = f"retry {doc.get('hostname')} ({doc.get('system_id')}): cleared {cleared}"
    if doc.get("reason"):
        line += f"; last pass: {doc['reason']}"
    if doc.get("note"):
        line += f"; note: {doc['note']}"
    return escape(line)

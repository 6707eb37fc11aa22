"""The `/power/acks` page: power-offs waiting for a person, each with an acknowledge button.

A plain HTML page with no script: it refreshes itself every few seconds and each button is a
form that POSTs to `<base>/<machine>/ack` (the router answers a form post with a redirect back
here). Every value from the configuration or from MAAS is HTML-escaped, and machine names are
percent-encoded in URLs. The page and its buttons take the power routes' credentials or
their own Basic user and password (`--power-ack-pass-file`), for which a browser asks: MAAS's
Bearer token is not something a browser can send. Those page credentials switch nothing.
"""

from __future__ import annotations

import asyncio
import html
import time
from urllib.parse import quote

from maasflow.serve.backends.acks import PendingAck

_REFRESH_SECONDS = 5

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<title>maasflow: power-offs awaiting acknowledgement</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em 1em;text-align:left}}</style>
</head><body>
<h1>Power-offs awaiting acknowledgement</h1>
<p>MAAS asked to power these machines off. Switch each one off by hand, then acknowledge it.</p>
"""


def _row(entry: PendingAck, base: str, now_loop: float) -> str:
    target = entry.target
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(entry.since))
    left = max(0, round(entry.deadline - now_loop))
    action = html.escape(f"{base}/{quote(target.name, safe='')}/ack", quote=True)
    cells = (target.name, target.hostname, target.system_id or "-", since, f"{left} s")
    tds = "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
    button = (
        f'<td><form method="post" action="{action}">'
        f'<button type="submit">Acknowledge: it is off</button></form></td>'
    )
    return f"<tr>{tds}{button}</tr>"


def render_acks_page(pending: list[PendingAck], base: str) -> str:
    """The whole page; `base` is the path of the power routes (e.g. `/power`)."""
    page = _HEAD.format(refresh=_REFRESH_SECONDS)
    if not pending:
        return page + "<p><em>Nothing is waiting.</em></p></body></html>\n"
    now_loop = asyncio.get_running_loop().time()
    header = "".join(
        f"<th>{title}</th>"
        for title in ("machine", "hostname", "system_id", "waiting since", "time left", "")
    )
    rows = "\n".join(_row(entry, base, now_loop) for entry in pending)
    return page + f"<table><tr>{header}</tr>\n{rows}\n</table></body></html>\n"

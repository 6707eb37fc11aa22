"""Wake-on-LAN backend: a magic packet powers on, a person's acknowledgement powers off.

The magic packet is 6 bytes of 0xFF followed by the target MAC 16 times (102 bytes), sent by
UDP with SO_BROADCAST to a broadcast address and port (default 255.255.255.255:9). A sleeping
host has no IP, so broadcast is the only address that reaches it.

Power-off cannot be done by software here, so it waits on the `AckBoard` until someone
acknowledges it or the deadline passes. With a `probe` (a TCP connect to, say, port 22) the
state comes from the machine itself, and a probe that reads "off" while an off is waiting
counts as the acknowledgement. Without one the state is the last one recorded in the
`PowerStateStore`, which survives restarts.

A machine woken by a packet needs minutes (PXE, then an OS) before its probe port opens, far
longer than MAAS's confirm loop (1+2+2+4+6+8+12 s). So after a packet it reads "on" from
memory for the probe's `boot_grace` (default 600 s) or until the probe first sees it up; only
then is a closed port believed to mean "off", as a reading or as an acknowledgement.
The same holds the other way: a person acknowledges a power-off while the OS is still
shutting down, and MAAS 3.5+ queries right away (its power CLI always ends with a query,
and its agent accepts the off only if that query reads off). So after an acknowledgement
the machine reads "off" for the probe's `shutdown_grace` (default 300 s) or until the probe
first sees it down; otherwise MAAS would POST the off again and the machine would be back
on the acknowledgement page.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import structlog

from maasflow.serve.backends import BackendUnavailable, PowerState, Superseded, Target
from maasflow.serve.backends.acks import AckBoard
from maasflow.serve.power_config import Probe, WolDefaults, WolMachine
from maasflow.serve.power_state import PowerStateStore

log = structlog.get_logger(__name__)


def magic_packet(mac: str) -> bytes:
    """The 102-byte magic packet for a normalized MAC (`aa:bb:cc:dd:ee:ff`)."""
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a 6-byte MAC: {mac!r}")
    return b"\xff" * 6 + raw * 16


def send_magic_packet(mac: str, host: str, port: int) -> None:
    """Send one magic packet by UDP broadcast; OSError if the network refuses it."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(magic_packet(mac), address)


async def probe_state(probe: Probe) -> PowerState:
    """ "on" when a TCP connection to the probe's host and port opens in time, else "off"."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(probe.host, probe.port), probe.timeout
        )
    except (OSError, TimeoutError):
        return "off"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "on"


class WolBackend:
    """One Wake-on-LAN machine."""

    def __init__(
        self, spec: WolMachine, defaults: WolDefaults, store: PowerStateStore, acks: AckBoard
    ) -> None:
        self._spec = spec
        self._host = spec.broadcast or defaults.broadcast
        self._port = spec.port if spec.port is not None else defaults.port
        self._ack_timeout = spec.off_ack_timeout or defaults.off_ack_timeout
        self._store = store
        self._acks = acks
        self._booting_until = 0.0  # monotonic; a closed probe port before this means booting
        self._stopping_until = 0.0  # monotonic; an open probe port before this means stopping

    async def power_on(self, target: Target) -> PowerState:
        """Send the packet (every time: MAAS re-POSTs until the machine is seen up)."""
        self._acks.cancel(target.name, Superseded(f"{target.name} was powered on meanwhile"))
        try:
            send_magic_packet(self._spec.mac, self._host, self._port)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot send a magic packet to {self._host}:{self._port}: {exc.strerror or exc}"
            ) from None
        log.info("wol.packet_sent", machine=target.name, to=f"{self._host}:{self._port}")
        self._stopping_until = 0.0
        if self._spec.probe is not None:
            self._booting_until = time.monotonic() + self._spec.probe.boot_grace
        self._store.set(target.name, "on")
        return "on"

    async def power_off(self, target: Target) -> PowerState:
        """Wait for a person's acknowledgement (or a probe reading off); already off is done."""
        if await self.query(target) == "off":
            return "off"
        waiting = asyncio.ensure_future(self._acks.wait(target, self._ack_timeout))
        try:
            seen_off = await self._until_acked(target, waiting)
        finally:
            waiting.cancel()
        self._booting_until = 0.0
        if self._spec.probe is not None and not seen_off:
            self._stopping_until = time.monotonic() + self._spec.probe.shutdown_grace
        self._store.set(target.name, "off")
        return "off"

    async def query(self, target: Target) -> PowerState:
        if self._spec.probe is None:
            return self._store.get(target.name)
        state = await self._probe(self._spec.probe)
        self._store.set(target.name, state)
        return state

    async def _probe(self, probe: Probe) -> PowerState:
        """The probe's reading, except that a closed port while booting still reads "on",
        and an open one while shutting down after an acknowledgement still reads "off"."""
        state = await probe_state(probe)
        now = time.monotonic()
        if state == "on":
            self._booting_until = 0.0  # seen up: from now on the probe is believed
            return "off" if now < self._stopping_until else "on"
        self._stopping_until = 0.0  # seen down: likewise
        return "on" if now < self._booting_until else "off"

    async def aclose(self) -> None:
        return None

    async def _until_acked(self, target: Target, waiting: asyncio.Future[None]) -> bool:
        """Wait for the acknowledgement; True when the probe gave it (the machine is down)."""
        probe = self._spec.probe
        seen_off = False
        while probe is not None and not waiting.done():
            await asyncio.wait({waiting}, timeout=probe.interval)
            if not waiting.done() and await self._probe(probe) == "off":
                seen_off = self._acks.ack(target.name)
        await waiting
        return seen_off

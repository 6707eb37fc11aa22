"""The machine listing, streamed: what the daemon reads of a machine, and how it is decoded.

`GET machines/` is MAAS's largest answer (a real machine object is ~8.7 KB, so 10,000
machines list in ~87 MB). It is decoded as it arrives, chunk by chunk, one machine at a time
(`item_scanner`: the standard library's C JSON scanner, on the loop's thread): each item is
copied into a `ListedMachine`, a small slotted object holding only the fields maasflow uses,
type-checked by hand (per-item pydantic validation costs more than the parse itself), and
dropped. Neither the body nor a full model of any machine is held.

`MachineData` (and its parts) is what the daemon's lifecycle reads: both a `ListedMachine`
and the pydantic `models.Machine` (single-machine answers, tests) satisfy it.

Bad input: a body that is not valid JSON (truncated, a proxy's page) raises
`UnreadableAnswer` (temporary: a GET is asked again); valid JSON that is not a list is a
`PermanentMaasError`; an entry with a missing or wrong-typed field is skipped with a warning
naming its system_id, not the listing. This module does no HTTP: the client hands it the
answer's chunks, size-capped.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog

from maasflow.common.errors import PermanentMaasError
from maasflow.daemon.maas.decoding import Streamed, UnreadableAnswer
from maasflow.daemon.maas.item_scanner import ItemScanner, NotAnArray

log = structlog.get_logger(__name__)

T = TypeVar("T")

# A MAAS machine nests about 6 levels deep; a hostile body nested deeper is refused before
# the (recursive) scanner sees it.
MAX_DEPTH = 2048
_SLICE = 2048  # at most ~700 brackets open in a valid slice: a real listing never hits the bound


# -- what the daemon reads ----------------------------------------------------------------


class NamedData(Protocol):
    """A zone, pool or domain reference."""

    @property
    def name(self) -> str: ...


class LinkData(Protocol):
    """One link of an interface."""

    @property
    def ip_address(self) -> str | None: ...


class InterfaceData(Protocol):
    """One network interface."""

    @property
    def id(self) -> int | None: ...
    @property
    def mac_address(self) -> str | None: ...
    @property
    def links(self) -> Sequence[LinkData]: ...


class MachineData(Protocol):
    """A machine as the daemon reads it."""

    @property
    def system_id(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def fqdn(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def status_name(self) -> str: ...
    @property
    def status_message(self) -> str | None: ...
    @property
    def error_description(self) -> str | None: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def locked(self) -> bool: ...
    @property
    def zone(self) -> NamedData: ...
    @property
    def power_state(self) -> str: ...
    @property
    def power_type(self) -> str: ...
    @property
    def tag_names(self) -> Sequence[str]: ...
    @property
    def ip_addresses(self) -> Sequence[str]: ...
    @property
    def interface_set(self) -> Sequence[InterfaceData]: ...
    @property
    def boot_interface(self) -> InterfaceData | None: ...
    @property
    def distro_series(self) -> str: ...
    @property
    def macs(self) -> list[str]: ...
    @property
    def pool_name(self) -> str: ...


def boot_first_macs(boot: InterfaceData | None, interfaces: Sequence[InterfaceData]) -> list[str]:
    """Every MAC of these interfaces once, the boot interface's first."""
    seen: list[str] = []
    for iface in ((boot,) if boot else ()) + tuple(interfaces):
        if iface.mac_address and iface.mac_address not in seen:
            seen.append(iface.mac_address)
    return seen


# -- the slim copies --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedName:
    name: str


@dataclass(frozen=True, slots=True)
class ListedLink:
    ip_address: str | None


@dataclass(frozen=True, slots=True)
class ListedInterface:
    id: int | None
    mac_address: str | None
    links: tuple[ListedLink, ...]


_NO_NAME = ListedName("")


@dataclass(frozen=True, slots=True)
class ListedMachine:
    """The fields of one listed machine that maasflow uses; nothing else is kept."""

    system_id: str
    hostname: str
    fqdn: str
    status: int
    status_name: str
    status_message: str | None
    error_description: str | None
    owner: str | None
    locked: bool
    zone: ListedName
    pool: ListedName | None
    power_state: str
    power_type: str
    tag_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    interface_set: tuple[ListedInterface, ...]
    boot_interface: ListedInterface | None
    distro_series: str

    @property
    def macs(self) -> list[str]:
        """Every MAC of the machine, the boot interface's first."""
        return boot_first_macs(self.boot_interface, self.interface_set)

    @property
    def pool_name(self) -> str:
        return self.pool.name if self.pool else ""


class BadEntry(ValueError):
    """One listed entry lacks a field maasflow needs, or has one of the wrong type."""


def listed_machine(entry: object) -> ListedMachine:
    """Copy the fields maasflow uses out of one decoded listing entry; BadEntry if unfit."""
    if not isinstance(entry, dict):
        raise BadEntry(f"(top): not a JSON object but a {type(entry).__name__}")
    return ListedMachine(
        system_id=_required(entry, "system_id", str),
        hostname=_text(entry, "hostname"),
        fqdn=_text(entry, "fqdn"),
        status=_required(entry, "status", int),
        status_name=_text(entry, "status_name"),
        status_message=_maybe_text(entry, "status_message"),
        error_description=_maybe_text(entry, "error_description"),
        owner=_maybe_text(entry, "owner"),
        locked=_flag(entry, "locked"),
        zone=_name(entry, "zone") or _NO_NAME,
        pool=_name(entry, "pool"),
        power_state=_text(entry, "power_state", "unknown"),
        power_type=_text(entry, "power_type"),
        tag_names=_texts(entry, "tag_names"),
        ip_addresses=_texts(entry, "ip_addresses"),
        interface_set=tuple(_interface(i, "interface_set") for i in _list(entry, "interface_set")),
        boot_interface=_maybe_interface(entry.get("boot_interface")),
        distro_series=_text(entry, "distro_series"),
    )


def _required(entry: dict[str, Any], key: str, kind: type[T]) -> T:
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadEntry(f"{key}: required {kind.__name__}, got {_shown_type(value)}")
    return value


def _text(entry: dict[str, Any], key: str, default: str = "") -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise BadEntry(f"{key}: expected a string, got {_shown_type(value)}")
    return value


def _maybe_text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise BadEntry(f"{key}: expected a string or null, got {_shown_type(value)}")
    return value


def _flag(entry: dict[str, Any], key: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise BadEntry(f"{key}: expected a boolean, got {_shown_type(value)}")
    return value


def _list(entry: dict[str, Any], key: str) -> list[Any]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadEntry(f"{key}: expected a list, got {_shown_type(value)}")
    return value


def _texts(entry: dict[str, Any], key: str) -> tuple[str, ...]:
    values = tuple(_list(entry, key))
    if not all(isinstance(v, str) for v in values):
        raise BadEntry(f"{key}: expected a list of strings")
    return values


def _name(entry: dict[str, Any], key: str) -> ListedName | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadEntry(f"{key}: expected an object, got {_shown_type(value)}")
    return ListedName(_text(value, "name"))


def _maybe_interface(value: object) -> ListedInterface | None:
    return None if value is None else _interface(value, "boot_interface")


def _interface(value: object, where: str) -> ListedInterface:
    if not isinstance(value, dict):
        raise BadEntry(f"{where}: expected an object, got {_shown_type(value)}")
    iface_id = value.get("id")
    if iface_id is not None and (not isinstance(iface_id, int) or isinstance(iface_id, bool)):
        raise BadEntry(f"{where}.id: expected an integer, got {_shown_type(iface_id)}")
    links = tuple(_link(link, where) for link in _list(value, "links"))
    return ListedInterface(iface_id, _maybe_text(value, "mac_address"), links)


def _link(value: object, where: str) -> ListedLink:
    if not isinstance(value, dict):
        raise BadEntry(f"{where}.links: expected objects, got {_shown_type(value)}")
    return ListedLink(_maybe_text(value, "ip_address"))


def _shown_type(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


# -- the stream ---------------------------------------------------------------------------


async def listed_machines(
    chunks: AsyncIterable[bytes], method: str, shown: str, status: int
) -> AsyncIterator[ListedMachine]:
    """Each machine of a listing soon after its last byte has arrived; bad entries skipped.

    Raises UnreadableAnswer when the body is not valid JSON (or ends early), and
    PermanentMaasError when it is valid JSON but not a list.
    """
    reading, scanner = _Reading(), ItemScanner()
    try:
        async for chunk in chunks:
            reading.saw(chunk)
            for piece in _pieces(chunk, reading, method, shown, status):
                for machine in _drained(scanner.feed(piece)):
                    yield machine
        rest = scanner.end()
    except NotAnArray as exc:
        message = f"expected a JSON list of machines, got a JSON {exc.kind}"
        raise PermanentMaasError(method, shown, status, message) from None
    except (ValueError, RecursionError):
        raise _unreadable(reading, method, shown, status) from None
    for machine in _drained(rest):
        yield machine


def _unreadable(reading: _Reading, method: str, shown: str, status: int) -> UnreadableAnswer:
    return UnreadableAnswer(
        method,
        shown,
        status,
        f"answer is not valid JSON ({reading.size} bytes read; truncated by a proxy "
        "or an overloaded MAAS?)",
    )


class _Reading:
    """What has arrived so far: its size, and a bound on its depth.

    `opened` (opening minus closing brackets, strings included) bounds the depth any byte of
    the next piece can reach, and a piece that could pass `MAX_DEPTH` is looked at in small
    slices, each bounded again: a body nested 100,000 deep is refused before it is parsed.
    """

    def __init__(self) -> None:
        self.size = 0
        self.opened = 0

    def saw(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def pieces(self, chunk: bytes) -> list[bytes]:
        """`chunk` cut so that no piece can take the parser past MAX_DEPTH; else _TooDeep."""
        opens, closes = _brackets(chunk)
        if self.opened + opens <= MAX_DEPTH:
            self.opened += opens - closes
            return [chunk]
        pieces = [chunk[at : at + _SLICE] for at in range(0, len(chunk), _SLICE)]
        for piece in pieces:
            opens, closes = _brackets(piece)
            if self.opened + opens > MAX_DEPTH:
                raise _TooDeep
            self.opened += opens - closes
        return pieces


class _TooDeep(ValueError):
    """The body may nest deeper than MAX_DEPTH."""


_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


def _brackets(piece: bytes) -> tuple[int, int]:
    """How many brackets `piece` opens and closes (one pass over it: the brackets alone are
    a hundredth of a machine's bytes, then counted)."""
    brackets = piece.translate(None, _NOT_BRACKETS)
    return brackets.count(b"[") + brackets.count(b"{"), brackets.count(b"]") + brackets.count(b"}")


def _pieces(chunk: bytes, reading: _Reading, method: str, shown: str, status: int) -> list[bytes]:
    try:
        return reading.pieces(chunk)
    except _TooDeep:
        message = f"answer is not valid JSON for MAAS: nested deeper than {MAX_DEPTH} levels"
        raise UnreadableAnswer(method, shown, status, message) from None


def _drained(parsed: list[Any]) -> list[ListedMachine]:
    """The machines of these parsed entries, bad entries skipped."""
    return [m for m in map(_machine_or_none, parsed) if m is not None]


def _machine_or_none(entry: object) -> ListedMachine | None:
    try:
        return listed_machine(entry)
    except BadEntry as exc:
        raw_id = entry.get("system_id") if isinstance(entry, dict) else None
        system_id = "".join(c for c in str(raw_id) if c.isprintable())[:64] if raw_id else None
        log.warning("maas.machine_skipped", system_id=system_id, problem=str(exc)[:300])
        return None


async def _collected(
    chunks: AsyncIterator[bytes], method: str, shown: str, status: int
) -> list[ListedMachine]:
    return [machine async for machine in listed_machines(chunks, method, shown, status)]


LISTING: Streamed[list[ListedMachine]] = Streamed(_collected)
"""The listing decoder: every machine, slim, in the order MAAS listed them."""

"""The items of a JSON array, parsed in a thread by ijson's C pull parser from async chunks.

ijson's pull mode (yajl2_c's own generator reading a file) parses about twice as fast as its
push mode (a chain of coroutines fed with `send`), but it reads through a blocking `read()`.
So the parser runs in a daemon thread reading from an `ItemPipe`, which the event loop
fills with the answer's pieces, never more than `BACKLOG` ahead of the parser; the items
parsed so far come back to the loop at each read. Neither side holds more than a few pieces
and the items of one. Only the parsing is here: what the items mean is the caller's
business, and so is making an error of the parser's exceptions (`finished` raises them).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

import ijson

BACKLOG = 4  # pieces handed over and not yet read by the parser


class _Aborted(Exception):
    """The loop gave up on the answer: the parser stops."""


class ItemPipe:
    """One answer's pieces in, its array items (at `prefix`) out; create it on the loop."""

    def __init__(self, prefix: str = "item") -> None:
        self._loop = asyncio.get_running_loop()
        self._pieces: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._room = asyncio.Semaphore(BACKLOG)
        self._parsed: list[Any] = []  # the thread's: items since its last hand-over
        self._ready: list[Any] = []  # the loop's: items handed over, not yet taken
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._done.add_done_callback(_retrieved)  # an abandoned answer's error is not news
        thread = threading.Thread(target=self._parse, args=(prefix,), name="maasflow-json")
        thread.daemon = True  # an abandoned answer never holds the process open
        thread.start()

    # -- the loop's side ------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the parser stopped: the end of the array, or an error."""
        return self._done.done()

    async def give(self, piece: bytes) -> None:
        """Hand the parser a piece of the body, first waiting while BACKLOG pieces wait."""
        if piece and not self.done:
            await self._room.acquire()
            self._pieces.put(piece)

    def take(self) -> list[Any]:
        """The items parsed since the last call."""
        ready, self._ready = self._ready, []
        return ready

    async def finished(self) -> list[Any]:
        """Say the body ended; the last items once the parser is through, or its error."""
        self._pieces.put(b"")
        await self._done
        return self.take()

    def abort(self) -> None:
        """Stop the parser, whatever it is doing (calling it after the end does no harm)."""
        self._pieces.put(None)

    # -- the parser's side (its thread) -----------------------------------------------------

    def read(self, size: int) -> bytes:
        """ijson's read: the next piece (b"" at the end), handing over what it parsed."""
        if size == 0:
            return b""
        self._hand_over()
        piece = self._pieces.get()
        self._call(self._room.release)
        if piece is None:
            raise _Aborted
        return piece

    def _parse(self, prefix: str) -> None:
        try:
            for item in ijson.items(self, prefix, use_float=True):
                self._parsed.append(item)
            self._hand_over()
            self._call(self._settle, None)
        except _Aborted:
            self._call(self._settle, None)
        except BaseException as exc:  # handed to the loop, which raises it in `finished`
            self._call(self._settle, exc)

    def _hand_over(self) -> None:
        if self._parsed:
            batch, self._parsed = self._parsed, []
            self._call(self._receive, batch)  # not `self._ready.extend`: `take` swaps the list

    def _receive(self, batch: list[Any]) -> None:
        self._ready.extend(batch)

    def _settle(self, error: BaseException | None) -> None:
        if self._done.done():
            return
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)
        for _ in range(BACKLOG):  # a `give` waiting for room must not wait forever
            self._room.release()

    def _call(self, function: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(function, *args)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()

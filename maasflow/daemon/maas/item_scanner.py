"""The items of a JSON array, decoded one by one as the array's pieces arrive.

Each item is decoded by the standard library's C scanner (`json`'s `scan_once`, the
`raw_decode` machinery) as soon as its last byte is in: on the event loop's own thread, so
there is no hand-off between threads (an earlier design ran ijson's pull parser in a thread;
waking the loop and passing the GIL back and forth at every piece cost more than the
parse). Only the tail of an item still arriving is held. An item that does not decode yet
is tried again once its text has doubled, so a huge or broken item costs at most about
twice its size to find out. Bytes are decoded as UTF-8 incrementally.

Only the parsing is here: what the items mean is the caller's business. `end()` raises
`ValueError` when the body is not one valid JSON array (broken, truncated, trailing
garbage); a body whose first character is not `[` is the caller's to judge (`first`).
Nesting is bounded by the caller (the scanner itself recurses).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from enum import Enum
from typing import Any

HELD = 1024 * 1024  # characters of a body that is not an array held to judge it
_KINDS = {dict: "object", str: "string", bool: "boolean", type(None): "null"}
_KINDS.update({int: "number", float: "number", list: "list"})
_FIRSTS = {"{": "object", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}
_FIRSTS.update({c: "number" for c in "-0123456789"})
_BLANK = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]*\Z")  # a number cut here may go on in the next piece
_SCAN: Callable[[str, int], tuple[Any, int]] = json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]


class _Expect(Enum):
    """What the scanner looks for next."""

    OPENING = "["
    ITEM_OR_CLOSING = "item or ]"
    ITEM = "item"
    COMMA_OR_CLOSING = ", or ]"
    NOTHING = "end"


class NotAnArray(ValueError):
    """The body is valid JSON, but not an array: `kind` names what it is."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"a JSON {kind}, not an array")
        self.kind = kind


class ItemScanner:
    """One JSON array's pieces in (`feed`), its items out as each completes."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._text = ""  # what has arrived and is not yet decoded
        self._retry_at = 0  # length `_text` must reach before an unfinished item is retried
        self._expect = _Expect.OPENING
        self.first = ""  # the body's first non-blank character: not "[", not a listing

    def feed(self, piece: bytes) -> list[Any]:
        """The items completed by this piece (ValueError on bytes that are not UTF-8)."""
        if self.first and self.first != "[" and len(self._text) >= HELD:
            return []  # not a listing, and too long to hold: judged by its first character
        self._text += self._utf8.decode(piece)
        if len(self._text) < self._retry_at:
            return []
        return self._scan(final=False)

    def end(self) -> list[Any]:
        """The last items; ValueError unless the body was one complete JSON array.

        A body that is not an array raises `NotAnArray` if it is valid JSON (and short: a
        long one is not held, and is judged by its first character alone).
        """
        self._text += self._utf8.decode(b"", final=True)
        items = self._scan(final=True)
        if self.first and self.first != "[":
            raise NotAnArray(self._kind())
        if self._expect is not _Expect.NOTHING or self._text:
            raise ValueError(f"not one complete JSON array: expected {self._expect.value}")
        return items

    def _kind(self) -> str:
        if len(self._text) < HELD:
            return _KINDS[type(json.loads(self._text))]
        if self.first not in _FIRSTS:
            raise ValueError(f"not JSON: begins with {self.first!r}")
        return _FIRSTS[self.first]

    def _scan(self, final: bool) -> list[Any]:
        self._retry_at = 0
        items: list[Any] = []
        text, at = self._text, 0
        while True:
            at = _BLANK.match(text, at).end()  # type: ignore[union-attr]  # always matches
            if at == len(text) or (self.first and self.first != "["):
                break
            step = self._step(text, at, final, items)
            if step is None:
                break
            at = step
        self._text = text[at:]
        return items

    def _step(self, text: str, at: int, final: bool, items: list[Any]) -> int | None:
        """The position after what `_expect` finds at `at`; None when it needs more text."""
        char = text[at]
        if self._expect is _Expect.OPENING:
            self.first = char
            self._expect = _Expect.ITEM_OR_CLOSING
            return at + 1 if char == "[" else None
        if char == "]" and self._expect in (_Expect.ITEM_OR_CLOSING, _Expect.COMMA_OR_CLOSING):
            self._expect = _Expect.NOTHING
            return at + 1
        if self._expect is _Expect.COMMA_OR_CLOSING and char == ",":
            self._expect = _Expect.ITEM
            return at + 1
        if self._expect in (_Expect.ITEM_OR_CLOSING, _Expect.ITEM):
            return self._item(text, at, final, items)
        raise ValueError(f"at character {at}: expected {self._expect.value}, got {char!r}")

    def _item(self, text: str, at: int, final: bool, items: list[Any]) -> int | None:
        try:
            item, end = _SCAN(text, at)
        except (StopIteration, json.JSONDecodeError):
            if final:
                raise ValueError(f"at character {at}: not a JSON value") from None
            self._retry_at = 2 * (len(text) - at)
            return None
        if not final and _NUMBER_TAIL.match(text, end) and _is_number(item):  # may go on
            self._retry_at = 2 * (len(text) - at)
            return None
        items.append(item)
        self._expect = _Expect.COMMA_OR_CLOSING
        return end


def _is_number(item: object) -> bool:
    return isinstance(item, int | float) and not isinstance(item, bool)

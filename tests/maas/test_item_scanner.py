"""The array scanner decodes each item once complete, whatever the pieces, and judges the rest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from maasflow.daemon.maas.item_scanner import HELD, ItemScanner, NotAnArray


def _scanned(body: bytes, size: int) -> list[Any]:
    scanner = ItemScanner()
    items: list[Any] = []
    for at in range(0, len(body), size):
        items += scanner.feed(body[at : at + size])
    return items + scanner.end()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_any_cut_gives_the_same_items(size: int) -> None:
    """Numbers, literals, strings and objects cut anywhere decode as json.loads decodes them."""
    value = [12345, -6.5e3, True, None, 'é ✓ "q"', {"a": [1, {"b": "c"}]}, [], 0]
    body = json.dumps(value, ensure_ascii=False).encode()
    assert _scanned(body, size) == value


def test_a_number_at_the_end_of_a_piece_waits_for_the_next() -> None:
    """[12 then 34] is one item, 1234, not 12 and a broken rest."""
    scanner = ItemScanner()
    assert scanner.feed(b"[12") == []
    assert scanner.feed(b"34, 5") == [1234]
    assert scanner.feed(b"]") == [5]
    assert scanner.end() == []


def test_items_come_out_as_soon_as_complete() -> None:
    """An item is handed out by the piece that completes it, before the array ends."""
    scanner = ItemScanner()
    assert scanner.feed(b'[{"a": 1}, {"b"') == [{"a": 1}]
    assert scanner.feed(b": 2}") == [{"b": 2}]
    assert scanner.feed(b"]") == []
    assert scanner.end() == []


@pytest.mark.parametrize(
    "body", [b"[1,]", b"[1 2]", b"[1", b"[1] x", b'[{"a": }]', b"[", b"", b"[\xff]"]
)
def test_a_body_that_is_not_one_array_is_a_value_error(body: bytes) -> None:
    """Trailing commas, missing commas, truncation, trailing garbage, bad UTF-8: ValueError."""
    with pytest.raises(ValueError):
        _scanned(body, 1)


@pytest.mark.parametrize(
    ("body", "kind"), [(b'{"item": 1}', "object"), (b' "x"', "string"), (b"7", "number")]
)
def test_valid_json_that_is_not_an_array_names_its_kind(body: bytes, kind: str) -> None:
    """A short body that is valid JSON but no array raises NotAnArray naming what it is."""
    with pytest.raises(NotAnArray) as caught:
        _scanned(body, 3)
    assert caught.value.kind == kind


def test_a_long_body_that_is_not_an_array_is_not_held() -> None:
    """Past HELD characters a non-array body is dropped and judged by its first character."""
    scanner = ItemScanner()
    scanner.feed(b'{"a": "')
    for _ in range(3 * HELD // 65536):
        scanner.feed(b"x" * 65536)
    assert len(scanner._text) < HELD + 65536 + 16
    with pytest.raises(NotAnArray, match="object"):
        scanner.end()


@pytest.mark.parametrize(
    ("item", "value"),
    [
        (json.dumps("y" * 1_000_000).encode(), "y" * 1_000_000),
        (b"0." + b"1" * 1_000_000, float("0." + "1" * 1_000_000)),
    ],
)
def test_a_long_item_is_retried_only_as_it_doubles(item: bytes, value: object) -> None:
    """An item of 1 MB fed in 1 KB pieces is tried about log2(1024) times, not 1,024 times:
    a string not yet closed, or a number that may go on in the next piece."""
    scanner = ItemScanner()
    tries = 0
    original = scanner._item

    def counted(*args: Any) -> int | None:
        nonlocal tries
        tries += 1
        result: int | None = original(*args)
        return result

    scanner._item = counted  # type: ignore[method-assign]
    body = b"[" + item + b"]"
    items = [i for at in range(0, len(body), 1024) for i in scanner.feed(body[at : at + 1024])]
    assert items + scanner.end() == [value]
    assert tries <= 16

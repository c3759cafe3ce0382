"""The conversions kept for download: each made once while kept, the oldest dropped first."""

from __future__ import annotations

from memegen.web.conversions import Conversions


def converter(calls: list[str], data: bytes):
    def convert() -> bytes:
        calls.append(data.decode())
        return data

    return convert


def test_a_conversion_asked_for_again_is_not_made_again() -> None:
    conversions, calls = Conversions(kept=2), []
    assert conversions.get("a", "webp", converter(calls, b"a.webp")) == b"a.webp"
    assert conversions.get("a", "webp", converter(calls, b"other")) == b"a.webp"
    assert calls == ["a.webp"]


def test_each_format_of_a_meme_is_its_own_conversion() -> None:
    conversions, calls = Conversions(kept=2), []
    conversions.get("a", "webp", converter(calls, b"a.webp"))
    assert conversions.get("a", "jpeg", converter(calls, b"a.jpeg")) == b"a.jpeg"
    assert calls == ["a.webp", "a.jpeg"]


def test_the_least_recently_asked_for_conversion_is_dropped_first() -> None:
    conversions, calls = Conversions(kept=2), []
    conversions.get("a", "webp", converter(calls, b"a"))
    conversions.get("b", "webp", converter(calls, b"b"))
    conversions.get("a", "webp", converter(calls, b"a"))  # kept, and now the newest
    conversions.get("c", "webp", converter(calls, b"c"))  # drops b
    conversions.get("a", "webp", converter(calls, b"a"))
    conversions.get("b", "webp", converter(calls, b"b"))
    assert calls == ["a", "b", "c", "b"]

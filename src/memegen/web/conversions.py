"""Memes converted to another format for download, kept while people still ask for them.

A meme is stored once, in the format it was made in; ``GET /memes/<id>.<ext>`` with
another extension converts it. For an animation that is every frame re-encoded (about
2 s for 60 frames as WebP). A client revalidating its copy is answered 304 before any
conversion (the ETag is the meme's id and the format), but a first download of each
format converts, so the last few conversions are kept in memory. Nothing here decides
whether a meme is still alive: the handler asks the store first, so an expired meme's conversion
is never served, and it drops out as newer ones come in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

#: Conversions kept: an animated meme converted is at most a few MB.
KEPT = 8


class Conversions:
    """The ``KEPT`` most recently asked-for conversions, by meme id and format; thread-safe."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._converted: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, meme_id: str, fmt: str, convert: Callable[[], bytes]) -> bytes:
        """The meme ``meme_id`` in ``fmt``, from ``convert()`` when it is not kept.

        Two requests for the same new conversion may both convert; the bytes are the
        same, and holding the lock while converting would queue every other download.
        """
        key = (meme_id, fmt)
        with self._lock:
            if key in self._converted:
                self._converted.move_to_end(key)
                return self._converted[key]
        data = convert()
        with self._lock:
            self._converted[key] = data
            self._converted.move_to_end(key)
            while len(self._converted) > self.kept:
                self._converted.popitem(last=False)
        return data

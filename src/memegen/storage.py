"""Where generated memes live between the POST that makes them and the GETs that fetch them.

Only finished memes are stored, never uploads: the web layer works on upload bytes in
memory. Each meme is one file ``<id>.<suffix>`` in a private directory. The id comes from
:func:`secrets.token_urlsafe`, so a URL cannot be guessed, and every id from outside is
checked against :data:`ID_PATTERN` before it comes near the file system, so it cannot
name a path elsewhere. A file's modification time is its creation time (set from the
store's clock), so the time to live survives restarts and needs no index file. Writes go
to a temporary file in the same directory and are moved into place with
:func:`os.replace`, so a reader sees a whole meme or none.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ID_BYTES = 16
"""Random bytes per id: 128 bits, written as 22 URL-safe characters."""
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
DEFAULT_SUFFIXES = ("jpg", "png", "webp")
TEMP_PREFIX = ".tmp-"
STALE_TEMP_SECONDS = 600
"""A temporary file this old was left by a crashed writer and is swept up."""


@dataclass(frozen=True)
class StoredMeme:
    """One meme on disk: its id, file suffix, path and when it stops being served."""

    id: str
    suffix: str
    path: Path
    expires_at: float


def is_valid_id(meme_id: str) -> bool:
    """True when ``meme_id`` has exactly the shape :meth:`MemeStore.save` hands out."""
    return ID_PATTERN.fullmatch(meme_id) is not None


class MemeStore:
    """Stores meme files under ``directory`` for ``ttl_seconds``; thread-safe.

    Only files ending in one of ``suffixes`` are stored, so finding a meme is a few
    ``stat`` calls, however many memes the directory holds. ``clock`` is injectable so
    tests can move time instead of sleeping.
    """

    def __init__(
        self,
        directory: Path,
        ttl_seconds: int,
        *,
        suffixes: tuple[str, ...] = DEFAULT_SUFFIXES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must be >= 0")
        self.directory = Path(directory)
        self.ttl_seconds = ttl_seconds
        self.suffixes = suffixes
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._make_directory()
        self._check_writable()

    def _make_directory(self) -> None:
        # 0o700: other local users have no business listing the memes of this one.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _check_writable(self) -> None:
        """Raise ``OSError`` unless a file can be made in the directory: a server that
        started on a read-only folder would run every upload's pipeline for a 500."""
        fd, probe = tempfile.mkstemp(dir=self.directory, prefix=TEMP_PREFIX, suffix=".probe")
        os.close(fd)
        os.unlink(probe)

    def save(self, data: bytes, suffix: str) -> StoredMeme:
        """Write ``data`` atomically under a fresh id; nothing is left behind if it fails."""
        if suffix not in self.suffixes:
            raise ValueError(f"suffix {suffix!r} is not one of {self.suffixes}")
        meme_id = secrets.token_urlsafe(ID_BYTES)
        path = self.directory / f"{meme_id}.{suffix}"
        now = self._clock()
        # The default directory lies under $TMPDIR, which cleaners may empty while we run.
        self._make_directory()
        fd, temp_name = tempfile.mkstemp(dir=self.directory, prefix=TEMP_PREFIX, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.utime(temp_name, (now, now))
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return StoredMeme(meme_id, suffix, path, now + self.ttl_seconds)

    def get(self, meme_id: str) -> StoredMeme | None:
        """The live meme with this id, or None when the id is malformed, unknown or expired.

        An expired meme is deleted on the spot, so expiry does not wait for the sweeper.
        """
        if not is_valid_id(meme_id):
            return None
        for suffix in self.suffixes:
            path = self.directory / f"{meme_id}.{suffix}"
            try:
                created = path.stat().st_mtime
            except FileNotFoundError:
                continue
            expires_at = created + self.ttl_seconds
            if self._clock() >= expires_at:
                self._remove(path)
                return None
            return StoredMeme(meme_id, suffix, path, expires_at)
        return None

    def seconds_left(self, meme: StoredMeme) -> int:
        """Whole seconds until ``meme`` expires (0 when it already has), for cache headers."""
        return max(0, int(meme.expires_at - self._clock()))

    def read(self, meme: StoredMeme) -> bytes | None:
        """The bytes of ``meme``, or None if the sweeper removed it since :meth:`get`."""
        try:
            return meme.path.read_bytes()
        except FileNotFoundError:
            return None

    def cleanup(self) -> int:
        """Delete expired memes and stale temporary files; returns how many went."""
        now = self._clock()
        removed = 0
        for path in self.directory.iterdir():
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):  # a folder someone made here is not ours
                continue
            age = now - info.st_mtime
            if path.name.startswith(TEMP_PREFIX):
                expired = age >= STALE_TEMP_SECONDS
            else:
                ours = is_valid_id(path.stem) and path.suffix[1:] in self.suffixes
                expired = ours and age >= self.ttl_seconds
            if expired and self._remove(path):
                removed += 1
        return removed

    def start_cleanup(self, interval_seconds: float = 60.0) -> None:
        """Sweep in a daemon thread every ``interval_seconds`` until :meth:`stop_cleanup`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._sweep_forever,
            args=(interval_seconds,),
            name="memegen-storage-cleanup",
            daemon=True,
        )
        self._thread.start()

    def stop_cleanup(self, timeout: float = 5.0) -> None:
        """Stop the sweeper thread and wait for it; safe to call when none runs."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def cleanup_running(self) -> bool:
        """Whether the sweeper thread is alive (for health checks and tests)."""
        return self._thread is not None and self._thread.is_alive()

    def _sweep_forever(self, interval_seconds: float) -> None:
        while not self._stop.wait(interval_seconds):
            try:
                removed = self.cleanup()
            except OSError:
                # A vanished or unreadable directory must not kill the thread for good.
                log.exception("meme cleanup failed")
            else:
                if removed:
                    log.info("removed %d expired memes", removed)

    @staticmethod
    def _remove(path: Path) -> bool:
        """Delete ``path``; one that cannot be deleted is logged and left, so that the
        sweep goes on to the others."""
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            log.warning("cannot remove %s: %s", path, error.strerror)
            return False
        return True

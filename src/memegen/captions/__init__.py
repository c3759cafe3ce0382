"""The caption bank: captions are data files, one per mood, and a picker over them.

Captions live in plain text (``data/<mood>.txt``, one ``TOP | BOTTOM`` per line)
so that writing jokes never means editing code, and so a deployment can bring
its own file for a mood (``MEMEGEN_CAPTIONS_DIR``) while keeping ours for the
others. Picking is seedable because the CLI's ``--seed`` and the tests need the
same caption for the same seed.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from memegen import LABELS
from memegen.errors import UserError
from memegen.typeset import UndrawableText, check_drawable

DATA_DIR = Path(__file__).parent / "data"

#: Every mood the bank knows: one per expression, then "no face found", "several faces",
#: and "mixed" for a face whose expression the classifier cannot call.
MOODS: tuple[str, ...] = (*LABELS, "noface", "group", "mixed")
#: Seeds run from 0 to this, less one: what a signed 64-bit integer holds, so a seed given
#: to the API, the page's JavaScript or the command line means the same caption in each.
SEED_LIMIT = 2**63


@dataclass(frozen=True)
class Caption:
    """One meme caption: the line set at the top of the picture and the one at the bottom.

    Either side may be empty (some jokes only need one line), never both.
    """

    top: str
    bottom: str


class CaptionFileError(UserError):
    """A caption file or directory that cannot be used; the message names the file and line."""


def read_caption_file(path: Path) -> tuple[Caption, ...]:
    """Parse one ``<mood>.txt`` file.

    Blank lines and lines starting with ``#`` are skipped; every other line must
    hold exactly one ``|`` with text on at least one side, in characters the bundled
    fonts draw (a caption in a script they lack would be set as a row of boxes).
    Errors say where, so a writer can fix the file without guessing.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise CaptionFileError(f"{path}: not UTF-8 text (byte {error.start})") from error
    except OSError as error:  # a link to nothing, a folder with a caption file's name
        raise CaptionFileError(f"{path}: {error.strerror or error}") from error
    captions: list[Caption] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.count("|") != 1:
            raise CaptionFileError(
                f"{path}:{number}: expected 'TOP TEXT | BOTTOM TEXT' with exactly one '|',"
                f" got {line!r}"
            )
        top, bottom = (part.strip() for part in line.split("|"))
        if not top and not bottom:
            raise CaptionFileError(f"{path}:{number}: both sides of '|' are empty")
        for side, words in (("top", top), ("bottom", bottom)):
            try:
                check_drawable(words)
            except UndrawableText as error:
                raise CaptionFileError(f"{path}:{number}: the {side} text {error}") from error
        captions.append(Caption(top, bottom))
    if not captions:
        raise CaptionFileError(f"{path}: no captions (every line is blank or a comment)")
    return tuple(captions)


def _read_directory(directory: Path) -> dict[str, tuple[Caption, ...]]:
    if not directory.is_dir():
        problem = "is a file, not a folder" if directory.exists() else "does not exist"
        raise CaptionFileError(f"captions directory {directory} {problem}")
    files = sorted(directory.glob("*.txt"))
    if not files:
        raise CaptionFileError(f"captions directory {directory} holds no <mood>.txt files")
    unknown = [path.name for path in files if path.stem not in MOODS]
    if unknown:
        # A typo such as "hapy.txt" would otherwise be ignored without a word.
        raise CaptionFileError(
            f"captions directory {directory}: {', '.join(unknown)} not a known mood;"
            f" expected files named after: {', '.join(MOODS)}"
        )
    return {path.stem: read_caption_file(path) for path in files}


class CaptionBank:
    """Captions per mood, and a reproducible way to pick one."""

    def __init__(self, captions: Mapping[str, Sequence[Caption]]) -> None:
        self._captions = {mood: tuple(items) for mood, items in captions.items()}
        empty = [mood for mood, items in self._captions.items() if not items]
        if empty:
            raise ValueError(f"no captions for mood(s): {', '.join(empty)}")

    @classmethod
    def load(cls, directory: Path | None = None) -> CaptionBank:
        """The bundled captions, with each mood ``directory`` defines replaced by its file.

        A user directory only needs the files it changes: a ``happy.txt`` there
        replaces our happy captions and every other mood keeps ours.
        """
        captions = _read_directory(DATA_DIR)
        if directory is not None:
            captions.update(_read_directory(Path(directory)))
        return cls(captions)

    @property
    def moods(self) -> tuple[str, ...]:
        """The moods this bank holds captions for, in the order of :data:`MOODS`."""
        return tuple(mood for mood in MOODS if mood in self._captions)

    def captions(self, mood: str) -> list[Caption]:
        """Every caption for ``mood``, in file order."""
        return list(self._pool(mood))

    def pick(
        self, mood: str, seed: int | None = None, exclude: Collection[Caption] = ()
    ) -> Caption:
        """One caption for ``mood``; the same ``seed`` always gives the same caption.

        Captions in ``exclude`` (say, those already used on this picture or
        in this session) are avoided while any other remains; once all are
        excluded the pick falls back to the whole list rather than failing.
        """
        pool = self._pool(mood)
        fresh = [caption for caption in pool if caption not in exclude]
        return random.Random(seed).choice(fresh or pool)

    def _pool(self, mood: str) -> tuple[Caption, ...]:
        try:
            return self._captions[mood]
        except KeyError:
            raise ValueError(
                f"unknown mood {mood!r}; expected one of: {', '.join(self.moods)}"
            ) from None

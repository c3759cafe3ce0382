"""The caption bank: the bundled files are sound, kind and plentiful; picking is reproducible."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memegen import LABELS
from memegen.captions import DATA_DIR, MOODS, Caption, CaptionBank, CaptionFileError

MINIMUM = {**dict.fromkeys(LABELS, 80), "noface": 40, "group": 40, "mixed": 30}
MAX_SIDE_LENGTH = 60

# Words that have no place in a caption we ship: insults aimed at people,
# at bodies, at minds. Matched as whole words, in any case, plural or not.
UNKIND = {
    "ugly",
    "fat",
    "fatso",
    "stupid",
    "idiot",
    "dumb",
    "moron",
    "retard",
    "retarded",
    "loser",
    "psycho",
    "cripple",
    "lame",
    "freak",
    "hideous",
    "crazy",
    "insane",
    "creepy",
    "kill",
    "dead",
    "drunk",
    "hangover",
}


@pytest.fixture(scope="module")
def bank() -> CaptionBank:
    return CaptionBank.load()


def every_caption(bank: CaptionBank) -> list[tuple[str, Caption]]:
    return [(mood, caption) for mood in bank.moods for caption in bank.captions(mood)]


def write(directory: Path, mood: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{mood}.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_files_cover_every_mood_and_nothing_else() -> None:
    assert sorted(path.stem for path in DATA_DIR.glob("*.txt")) == sorted(MOODS)
    assert (*LABELS, "noface", "group", "mixed") == MOODS


def test_bundled_files_parse(bank: CaptionBank) -> None:
    assert bank.moods == MOODS


@pytest.mark.parametrize("mood", MOODS)
def test_each_mood_has_enough_captions(bank: CaptionBank, mood: str) -> None:
    assert len(bank.captions(mood)) >= MINIMUM[mood]


def test_no_caption_appears_twice_anywhere(bank: CaptionBank) -> None:
    seen: dict[tuple[str, str], str] = {}
    for mood, caption in every_caption(bank):
        key = (caption.top.casefold(), caption.bottom.casefold())
        assert key not in seen, f"{caption} is in both {seen[key]} and {mood}"
        seen[key] = mood


def test_every_side_is_short_enough_to_fit(bank: CaptionBank) -> None:
    too_long = [
        (mood, side)
        for mood, caption in every_caption(bank)
        for side in (caption.top, caption.bottom)
        if len(side) > MAX_SIDE_LENGTH
    ]
    assert not too_long


def test_every_caption_has_text_and_no_stray_whitespace(bank: CaptionBank) -> None:
    for _, caption in every_caption(bank):
        assert caption.top or caption.bottom
        for side in (caption.top, caption.bottom):
            assert side == side.strip()
            assert "  " not in side


def test_no_caption_uses_an_unkind_word(bank: CaptionBank) -> None:
    offenders = [
        (mood, caption)
        for mood, caption in every_caption(bank)
        for word in re.findall(r"[a-z]+", f"{caption.top} {caption.bottom}".lower())
        if word in UNKIND or word.removesuffix("s") in UNKIND
    ]
    assert not offenders


def test_same_seed_picks_the_same_caption(bank: CaptionBank) -> None:
    assert bank.pick("happy", seed=42) == bank.pick("happy", seed=42)
    assert CaptionBank.load().pick("sad", seed=7) == bank.pick("sad", seed=7)


def test_different_seeds_pick_different_captions(bank: CaptionBank) -> None:
    assert len({bank.pick("angry", seed=seed) for seed in range(10)}) > 1


def test_pick_comes_from_the_mood_asked_for(bank: CaptionBank) -> None:
    for mood in MOODS:
        assert bank.pick(mood, seed=1) in bank.captions(mood)


def test_exclude_avoids_repeats_while_others_remain(tmp_path: Path) -> None:
    write(tmp_path, "happy", "one | a\ntwo | b\nthree | c\n")
    bank = CaptionBank.load(tmp_path)
    first, second = Caption("one", "a"), Caption("two", "b")
    for seed in range(20):
        assert bank.pick("happy", seed=seed, exclude=[first, second]) == Caption("three", "c")


def test_exclude_falls_back_to_every_caption_when_all_are_used(bank: CaptionBank) -> None:
    everything = bank.captions("group")
    assert bank.pick("group", seed=3, exclude=everything) in everything


def test_unknown_mood_names_the_moods_it_knows(bank: CaptionBank) -> None:
    with pytest.raises(ValueError, match=r"unknown mood 'excited'.*happy"):
        bank.pick("excited")
    with pytest.raises(ValueError, match="unknown mood"):
        bank.captions("excited")


def test_user_directory_replaces_its_moods_and_keeps_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "happy", "# our own\nOnly this | one\n")
    bundled = CaptionBank.load()
    custom = CaptionBank.load(tmp_path)
    assert custom.captions("happy") == [Caption("Only this", "one")]
    assert custom.pick("happy", seed=9) == Caption("Only this", "one")
    for mood in MOODS:
        if mood != "happy":
            assert custom.captions(mood) == bundled.captions(mood)


def test_one_sided_captions_and_comments_parse(tmp_path: Path) -> None:
    write(tmp_path, "sad", "# comment\n\n  | bottom only  \ntop only |\n   # indented comment\n")
    assert CaptionBank.load(tmp_path).captions("sad") == [
        Caption("", "bottom only"),
        Caption("top only", ""),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("no pipe here", "exactly one '|'"),
        ("too | many | pipes", "exactly one '|'"),
        ("   |   ", "both sides"),
        ("fine | 你好", "the bottom text uses characters MemeGen's fonts cannot draw: 你 好"),
        ("bell\x07 | fine", "the top text uses characters"),
    ],
)
def test_a_bad_line_is_reported_with_file_and_line_number(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = write(tmp_path, "fear", f"# header\nfine | line\n{line}\n")
    with pytest.raises(CaptionFileError, match=re.escape(f"{path}:3:") + ".*" + re.escape(problem)):
        CaptionBank.load(tmp_path)


def test_a_file_with_no_captions_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "fear", "# only a comment\n\n")
    with pytest.raises(CaptionFileError, match="no captions"):
        CaptionBank.load(tmp_path)


def test_a_misspelt_mood_file_is_an_error_not_ignored(tmp_path: Path) -> None:
    write(tmp_path, "hapy", "a | b\n")
    with pytest.raises(CaptionFileError, match=r"hapy\.txt.*not a known mood"):
        CaptionBank.load(tmp_path)


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CaptionFileError, match="does not exist"):
        CaptionBank.load(tmp_path / "nowhere")


def test_a_file_named_as_the_directory_is_an_error_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "captions").write_text("a | b\n")
    with pytest.raises(CaptionFileError, match="is a file, not a folder"):
        CaptionBank.load(tmp_path / "captions")


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    tmp_path.joinpath("angry.txt").write_bytes(b"caf\xe9 | latin-1\n")
    with pytest.raises(CaptionFileError, match=r"angry\.txt: not UTF-8"):
        CaptionBank.load(tmp_path)


def test_every_caption_fits_at_the_minimum_font_size_on_a_400px_square(bank):
    """The smallest picture we design for: every line must fit whole, never cut with "…"."""
    from memegen import render, typeset

    side = 400
    min_size, _ = render._font_bounds(side, side)
    box_width = side - 2 * max(1, round(side * render.SIDE_MARGIN))
    box_height = round(side * render.BOX_HEIGHT)
    too_long = []
    for mood in bank.moods:
        for caption in bank.captions(mood):
            for text in (caption.top, caption.bottom):
                block = render.fit_text(
                    text, box_width, box_height, max_size=min_size, min_size=min_size
                )
                if block is None:
                    continue
                if " ".join(block.lines).split() != typeset.upper(text).split():
                    too_long.append(f"{mood}: {text}")
    assert too_long == []

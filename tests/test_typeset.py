"""Text in any script: fallback fonts per character, colour emoji, capitals per script."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from memegen import typeset
from memegen.captions import Caption
from memegen.render import STYLES, render_meme

GREY = (128, 128, 128)
MIXED = "Привет Καλημέρα नमस्ते 😂 👍🏽 👩‍💻 🇫🇷 ❤️ done"


def grey(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), GREY)


@pytest.mark.parametrize("typeface", [typeset.MEME, typeset.SANS, typeset.SERIF])
def test_every_character_is_drawn_by_a_font_that_has_it(typeface: typeset.Typeface) -> None:
    for file, run in typeset.runs(typeset.upper(MIXED), typeface):
        assert file in typeface.files
        first = run.lstrip()
        if first:
            assert ord(first[0]) in typeset.coverage(file), f"{run!r} in {file}"


@pytest.mark.parametrize("typeface", [typeset.SANS, typeset.SANS_BOLD, typeset.SERIF])
def test_every_stack_draws_every_character_a_bundled_font_has(typeface: typeset.Typeface):
    """What check_drawable lets through is drawable in every style, the watermark's too:
    ≈ and ∞, which only Bebas Neue has, came out as empty boxes in modern and poster."""
    def characters(files: tuple[str, ...]) -> frozenset[int]:
        return frozenset().union(*(typeset.coverage(file) for file in files))

    assert characters(typeface.files) == characters(typeset.BUNDLED)


def test_scripts_go_to_the_fonts_made_for_them() -> None:
    fonts = dict((run.strip(), file) for file, run in typeset.runs("ABC ΩΨ नमस्ते 😂", typeset.MEME))
    assert fonts["ABC"] == "BebasNeue-Bold.otf"
    assert fonts["ΩΨ"] == "NotoSans-Bold.ttf", "Bebas Neue has no Greek"
    assert fonts["नमस्ते"] == "NotoSansDevanagari-Bold.ttf"
    assert fonts["😂"] == typeset.EMOJI


@pytest.mark.parametrize("sequence", ["👍🏽", "👩‍💻", "🇫🇷", "❤️", "1️⃣"])
def test_an_emoji_sequence_stays_whole_in_the_emoji_font(sequence: str) -> None:
    assert typeset.runs(sequence, typeset.MEME) == [(typeset.EMOJI, sequence)]


def test_a_devanagari_conjunct_is_shaped_not_set_letter_by_letter() -> None:
    # क + virama + ष form one conjunct glyph, narrower than the three letters side by side.
    whole = typeset.length("क्ष", typeset.MEME, 100)
    apart = sum(typeset.length(letter, typeset.MEME, 100) for letter in "क्ष")
    assert whole < apart


@pytest.mark.parametrize(
    ("text", "capitals"),
    [
        ("καλημέρα κόσμε", "ΚΑΛΗΜΕΡΑ ΚΟΣΜΕ"),
        ("ἄνθρωπος", "ΑΝΘΡΩΠΟΣ"),
        ("привет, ёж", "ПРИВЕТ, ЁЖ"),
        ("straße", "STRASSE"),
        ("नमस्ते", "नमस्ते"),
        ("ok 😂", "OK 😂"),
    ],
)
def test_capitals_follow_each_scripts_rules(text: str, capitals: str) -> None:
    assert typeset.upper(text) == capitals


def test_emoji_are_drawn_in_colour() -> None:
    meme = np.asarray(render_meme(grey(400, 300), Caption("😂🔥", "")), dtype=np.int16)
    saturation = meme.max(axis=2) - meme.min(axis=2)
    assert (saturation > 100).sum() > 300


@pytest.mark.parametrize("style", STYLES)
def test_text_in_every_script_stays_inside_the_picture_in_every_style(style: str) -> None:
    meme = render_meme(grey(500, 400), Caption(MIXED, MIXED), style=style)
    drawn = np.any(np.asarray(meme) != GREY, axis=2)
    assert drawn.any()
    if style == "classic":
        assert not drawn[:, :10].any() and not drawn[:, -10:].any()


def test_a_letter_and_its_accent_go_to_the_first_font_that_has_both() -> None:
    # Bebas Neue has X but no combining acute, which it would draw as a box.
    assert typeset.runs("OX\u0301", typeset.MEME) == [
        ("BebasNeue-Bold.otf", "O"), ("NotoSans-Bold.ttf", "X\u0301")
    ]


@pytest.mark.parametrize("style", STYLES)
def test_accents_typed_apart_are_set_as_the_composed_letters(style: str) -> None:
    apart, composed = "Vie\u0323\u0302t Nam", "Vi\u1ec7t Nam"
    assert np.array_equal(
        np.asarray(render_meme(grey(400, 300), Caption(apart, apart), style=style)),
        np.asarray(render_meme(grey(400, 300), Caption(composed, composed), style=style)),
    )


def test_a_character_no_font_has_goes_to_the_primary_font() -> None:
    assert typeset.runs("\ue000", typeset.MEME) == [("BebasNeue-Bold.otf", "\ue000")]


def test_text_in_every_bundled_script_is_drawable() -> None:
    assert typeset.undrawable(MIXED + " café\u0301\ttab\nline") == ""


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("你好 world 你", "你好"),
        ("مرحبا", "مرحبا"),
        ("שלום!", "שלום"),
        ("bell\x07 and\x01", "\x07\x01"),
        ("a\u0f71 b", "\u0f71"),  # a Tibetan vowel sign: no font has it
        ("क\u0301", "\u0301"),  # the Devanagari font has the letter, not the accent
    ],
)
def test_characters_no_bundled_font_has_are_named_once_each(text: str, missing: str) -> None:
    assert typeset.undrawable(text) == missing
    with pytest.raises(typeset.UndrawableText, match="cannot draw"):
        typeset.check_drawable(text)


def test_the_refusal_spells_out_invisible_characters() -> None:
    with pytest.raises(typeset.UndrawableText, match="U\\+0007"):
        typeset.check_drawable("ding\x07")


def test_the_bundled_fonts_come_with_their_licences() -> None:
    for file in {*typeset.MEME.files, *typeset.SANS.files, *typeset.SERIF.files}:
        assert (typeset.FONT_DIR / file).is_file()
    notice = (typeset.FONT_DIR.parent / "NOTICE").read_text()
    for file in {*typeset.SANS.files, *typeset.SERIF.files, *typeset.SANS_BOLD.files}:
        assert file in notice, f"{file} missing from NOTICE"


def test_every_primary_font_has_all_of_printable_ascii() -> None:
    printable = set(range(0x20, 0x7F))
    for typeface in (typeset.MEME, typeset.SANS, typeset.SANS_BOLD, typeset.SERIF):
        assert printable <= typeset.coverage(typeface.primary), typeface.primary

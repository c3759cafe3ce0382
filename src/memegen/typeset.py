"""Setting lines of text in any script: font stacks, per-character fallback, colour emoji.

A caption can mix Latin, Cyrillic, Greek, Devanagari and emoji, while a meme
face such as Bebas Neue has Latin (and Cyrillic) only. A :class:`Typeface` is
therefore a stack of bundled fonts: each character is drawn by the first font
whose character map holds it, and a line is cut into *runs* of characters that
share a font, so that each run is shaped as a whole (Devanagari conjuncts and
emoji sequences need that). Character maps come from fontTools, read once per
font and process: Pillow cannot tell whether a font has a glyph.

Noto Color Emoji is a bitmap font that FreeType only opens at 109 px: its runs
are drawn at that size in colour and the picture is scaled to the text, sized
from the primary font's cap height so a smiley sits level with capitals.

Everything draws into an :class:`Ink`: a grey mask of where the text is (for
styles to fill and outline as they like) plus, when there are emoji, an RGBA
layer with their colours to lay over the fill.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

FONT_DIR = Path(__file__).parent / "assets" / "fonts"
EMOJI = "NotoColorEmoji.ttf"
BEBAS = "BebasNeue-Bold.otf"
EMOJI_SIZE = 109  # px: the one size at which the bitmap emoji font exists
EMOJI_HEIGHT = 1.25  # an emoji's height, in cap heights of the text around it
VARIATION_EMOJI = "\ufe0f"  # asks for the colour (emoji) form of the character before it
# Characters that belong to the glyph before them, whatever font has them on their own:
# the zero-width joiner and variation selectors of emoji sequences, skin tones, the keycap.
_JOINERS = frozenset("\u200d\ufe0e\ufe0f\u20e3")
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_TAGS = range(0xE0020, 0xE0080)
# Accents that Greek drops in upper case (tonos, varia, perispomeni, breathings).
_GREEK_CASE_ACCENTS = frozenset("\u0301\u0300\u0342\u0313\u0314")


@dataclass(frozen=True)
class Typeface:
    """A stack of bundled font files: the first that has a character draws it."""

    files: tuple[str, ...]

    @property
    def primary(self) -> str:
        return self.files[0]


#: Classic meme type: Bebas Neue, then Noto Sans Bold for Greek and the rest of Latin.
MEME = Typeface((BEBAS, "NotoSans-Bold.ttf", "NotoSansDevanagari-Bold.ttf", EMOJI))
#: The other stacks end with Bebas Neue for the few symbols only it has (≈ and ∞ were
#: drawn as empty boxes in the modern and poster styles).
SANS = Typeface(("NotoSans-Regular.ttf", "NotoSansDevanagari-Regular.ttf", EMOJI, BEBAS))
SANS_BOLD = Typeface(("NotoSans-Bold.ttf", "NotoSansDevanagari-Bold.ttf", EMOJI, BEBAS))
SERIF = Typeface(("NotoSerif-Bold.ttf", "NotoSansDevanagari-Bold.ttf", EMOJI, BEBAS))
#: Every bundled font with text or emoji (all four stacks draw the same characters).
BUNDLED = tuple(dict.fromkeys(MEME.files + SANS.files + SERIF.files))
#: Scripts the bundled fonts draw, for messages about characters they cannot.
SCRIPTS = "Latin, Greek, Cyrillic, Devanagari and emoji"


class UndrawableText(ValueError):
    """Text with characters that no bundled font draws."""


def check_drawable(text: str) -> None:
    """Raise ``UndrawableText`` naming the characters of ``text`` no bundled font draws."""
    missing = undrawable(text)
    if missing:
        shown = " ".join(char if char.isprintable() else f"U+{ord(char):04X}" for char in missing)
        raise UndrawableText(
            f"uses characters MemeGen's fonts cannot draw: {shown}. They draw {SCRIPTS}."
        )


def undrawable(text: str) -> str:
    """The characters of ``text`` that no bundled font draws, each once, in order.

    Without this a caption in Chinese, Arabic or Hebrew would be set as a row of
    missing-glyph boxes and look like a bug in the meme; control characters too.
    Whitespace is fine (lines are rewrapped), and emoji joiners go with the
    character before them. An accent or other mark must be in a font that also has
    the letter it sits on (``runs`` draws the pair in that font); the text is read
    composed (NFC) first, as it is set, so "é" typed as "e" and an accent is fine.
    """
    if text.isascii() and text.isprintable():
        return ""
    missing: dict[str, None] = {}
    for cluster in _clusters(unicodedata.normalize("NFC", text)):
        base = cluster[0]
        if base.isspace() or _joined(base):
            continue
        if unicodedata.category(base) == "Cc" or _font_with(base, BUNDLED) is None:
            missing[base] = None
        elif _font_with(cluster, BUNDLED) is None:
            with_base = [file for file in BUNDLED if ord(base) in coverage(file)]
            for char in cluster[1:]:
                if not _joined(char) and not any(ord(char) in coverage(f) for f in with_base):
                    missing[char] = None
    return "".join(missing)


@lru_cache(maxsize=256)
def font(file: str, size: int) -> ImageFont.FreeTypeFont:
    """A bundled font at ``size`` px (the emoji font only at its one size), loaded once."""
    if file == EMOJI:
        size = EMOJI_SIZE
    return ImageFont.truetype(str(FONT_DIR / file), size)


@cache
def coverage(file: str) -> frozenset[int]:
    """The code points ``file`` has glyphs for, read once per process."""
    from fontTools.ttLib import TTFont  # only paid for when a caption needs fallback

    with TTFont(FONT_DIR / file, lazy=True) as ttfont:
        return frozenset(ttfont.getBestCmap())


@lru_cache(maxsize=16)
def cap_height(file: str) -> float:
    """Height of a capital H, as a fraction of the font size."""
    return -font(file, 200).getbbox("H", anchor="ls")[1] / 200


def upper(text: str) -> str:
    """``text`` in capitals as each script writes them: Greek drops its accents in caps
    (ΚΑΛΗΜΕΡΑ, not ΚΑΛΗΜΈΡΑ), which ``str.upper`` alone keeps."""
    shouted = text.upper()
    if not any("\u0370" <= char <= "\u03ff" or "\u1f00" <= char <= "\u1fff" for char in shouted):
        return shouted
    kept: list[str] = []
    base_is_greek = False
    for char in unicodedata.normalize("NFD", shouted):
        if unicodedata.combining(char):
            if base_is_greek and char in _GREEK_CASE_ACCENTS:
                continue
        else:
            base_is_greek = "GREEK" in unicodedata.name(char, "")
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def _joined(char: str) -> bool:
    """An emoji joiner, selector, skin tone or tag: no font needs to draw it alone."""
    code = ord(char)
    return char in _JOINERS or code in _SKIN_TONES or code in _TAGS


def _mark(char: str) -> bool:
    return unicodedata.category(char) in ("Mn", "Mc", "Me")


def _clusters(text: str) -> list[str]:
    """``text`` cut before every character that does not belong to the one before it."""
    clusters: list[str] = []
    for char in text:
        if clusters and (_joined(char) or _mark(char)) and not clusters[-1].isspace():
            clusters[-1] += char
        else:
            clusters.append(char)
    return clusters


def _font_with(cluster: str, files: Sequence[str]) -> str | None:
    """The first of ``files`` that has every character of ``cluster`` but its joiners."""
    needed = [ord(char) for char in cluster if not _joined(char)]
    for file in files:
        if all(code in coverage(file) for code in needed):
            return file
    return None


def runs(text: str, typeface: Typeface) -> list[tuple[str, str]]:
    """``text`` cut into ``(font file, characters)`` runs, each drawn by one font.

    Spaces stay with the primary font (they have no ink, and this keeps the
    primary's own spacing); a letter and the marks and emoji joiners after it are
    drawn by the first font that has them all (Bebas Neue has "x" but no acute
    accent, so "x́" is Noto's); a character followed by VS16 prefers the emoji font;
    one that no font has goes to the primary font, which draws its missing-glyph box.
    """
    result: list[tuple[str, str]] = []
    for cluster in _clusters(text):
        file = typeface.primary if cluster.isspace() else _font_for(cluster, typeface)
        if result and result[-1][0] == file:
            result[-1] = (file, result[-1][1] + cluster)
        else:
            result.append((file, cluster))
    return result


def _font_for(cluster: str, typeface: Typeface) -> str:
    wants_emoji = cluster[1:2] == VARIATION_EMOJI
    if wants_emoji and EMOJI in typeface.files and ord(cluster[0]) in coverage(EMOJI):
        return EMOJI
    return (
        _font_with(cluster, typeface.files)
        or _font_with(cluster[0], typeface.files)
        or typeface.primary
    )


def _plain(text: str, typeface: Typeface) -> bool:
    """Whether the primary font draws every character (the common, fast case).

    Every bundled primary font has all of printable ASCII (a test checks it), so
    ASCII text never loads a character map, nor fontTools.
    """
    if text.isascii():
        return True
    primary = coverage(typeface.primary)
    return all(char.isspace() or ord(char) in primary for char in text)


def _emoji_scale(typeface: Typeface, size: int) -> float:
    """Factor from the emoji font's 109 px to emoji as tall as :data:`EMOJI_HEIGHT` caps."""
    ascent, descent = font(EMOJI, EMOJI_SIZE).getmetrics()
    return EMOJI_HEIGHT * cap_height(typeface.primary) * size / (ascent + descent)


@lru_cache(maxsize=4096)
def length(text: str, typeface: Typeface, size: int) -> float:
    """Advance width of ``text`` at ``size`` px, each run measured in its own font.

    Cached: wrapping measures each word at many sizes, and an animated meme sets the
    same caption on every frame."""
    if _plain(text, typeface):
        return font(typeface.primary, size).getlength(text)
    total = 0.0
    for file, run in runs(text, typeface):
        advance = font(file, size).getlength(run)
        total += advance * _emoji_scale(typeface, size) if file == EMOJI else advance
    return total


@dataclass
class Ink:
    """Text set on a canvas: ``mask`` says where (emoji included), ``colour`` holds emoji."""

    mask: Image.Image
    colour: Image.Image | None = None

    def crop(self, box: tuple[int, int, int, int]) -> Ink:
        return Ink(self.mask.crop(box), None if self.colour is None else self.colour.crop(box))


def draw_line(
    ink: Ink, origin: tuple[float, float], text: str, typeface: Typeface, size: int
) -> None:
    """Draw ``text`` into ``ink`` from ``origin`` (left end of its baseline)."""
    x, baseline = origin
    draw = ImageDraw.Draw(ink.mask)
    for file, run in runs(text, typeface):
        face = font(file, size)
        if file != EMOJI:
            draw.text((x, baseline), run, fill=255, font=face, anchor="ls")
            x += face.getlength(run)
            continue
        scale = _emoji_scale(typeface, size)
        scaled = _scaled_emoji_picture(run, scale)
        # Centred on the middle of the capitals, as emoji sit in typeset text.
        top = round(baseline - cap_height(typeface.primary) * size / 2 - scaled.height / 2)
        if ink.colour is None:
            ink.colour = Image.new("RGBA", ink.mask.size)
        ink.colour.alpha_composite(scaled, (round(x), top))
        ink.mask.paste(
            ImageChops.lighter(
                ink.mask.crop((round(x), top, round(x) + scaled.width, top + scaled.height)),
                scaled.getchannel("A"),
            ),
            (round(x), top),
        )
        x += face.getlength(run) * scale


#: Emoji pictures kept, at 109 px and scaled: a run of thirty is about 2 MB at 109 px, so
#: this bounds what captions that differ every time can make the caches hold.
_EMOJI_PICTURES_KEPT = 64


@lru_cache(maxsize=_EMOJI_PICTURES_KEPT)
def _scaled_emoji_picture(run: str, scale: float) -> Image.Image:
    """``_emoji_picture`` scaled to the text, kept because an animated meme draws the same
    run at the same size on every frame (Lanczos over a long run costs milliseconds)."""
    picture = _emoji_picture(run)
    return picture.resize(
        (max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
        Image.Resampling.LANCZOS,
    )


@lru_cache(maxsize=_EMOJI_PICTURES_KEPT)
def _emoji_picture(run: str) -> Image.Image:
    """A run of emoji in colour at 109 px, from the top of the font's ascent to its descent."""
    face = font(EMOJI, EMOJI_SIZE)
    ascent, descent = face.getmetrics()
    picture = Image.new("RGBA", (max(1, round(face.getlength(run))), ascent + descent))
    ImageDraw.Draw(picture).text((0, ascent), run, font=face, anchor="ls", embedded_color=True)
    return picture


def set_lines(
    lines: Sequence[str],
    typeface: Typeface,
    size: int,
    *,
    width: int,
    first_baseline: int,
    pitch: int,
    height: int,
) -> Ink:
    """Lines centred across a ``width`` × ``height`` canvas, baselines ``pitch`` apart."""
    ink = Ink(Image.new("L", (width, height)))
    for index, line in enumerate(lines):
        baseline = first_baseline + index * pitch
        if _plain(line, typeface):
            # One font: let FreeType centre the line itself, to the subpixel.
            face = font(typeface.primary, size)
            ImageDraw.Draw(ink.mask).text((width / 2, baseline), line, 255, face, anchor="ms")
        else:
            left = (width - length(line, typeface, size)) / 2
            draw_line(ink, (left, baseline), line, typeface, size)
    return ink


def paint(
    image: Image.Image, ink: Ink, origin: tuple[int, int], fill: tuple[int, int, int]
) -> None:
    """Lay ``ink`` on ``image`` at ``origin``: the text in ``fill``, emoji in their colours."""
    image.paste(fill, (*origin, origin[0] + ink.mask.width, origin[1] + ink.mask.height), ink.mask)
    if ink.colour is not None:
        image.paste(ink.colour.convert("RGB"), origin, ink.colour.getchannel("A"))

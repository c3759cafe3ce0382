"""Meme layout and typography.

A *style* is a function that draws a caption onto an RGB picture which is
already sized and is the style's own copy to draw on, and returns the meme
with the box where the picture landed in it (styles that add a band or a
frame move it). :func:`render` sizes the picture, looks the style up by name and
runs it, so a new style is one more function and one more entry in ``_STYLES``,
and never a change to the existing ones.

The classic style is the one everybody knows: upper case, bold condensed type,
white with a black outline, the setup at the top and the punchline at the
bottom, each fitted as large as it goes. ``modern`` puts the whole caption in
a white band above the photo in black sans type, as memes on social networks
do; ``poster`` is the black-framed demotivational poster; ``faces`` labels
every face of a group photo with a word for its expression.

Fitting works on advance widths measured once at a reference size and scaled
(advances scale linearly to within a pixel or two from 6 px up), so trying a
size costs arithmetic instead of shaping text again; only the chosen lines are
drawn. Scripts and emoji the meme font lacks come from the fallback fonts of
:mod:`memegen.typeset`. Faces are never boxed here: the web page draws its own
overlay.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, pairwise

import cv2
import numpy as np
from PIL import Image

from memegen import typeset
from memegen.captions import Caption
from memegen.typeset import Ink, Typeface

# Classic layout, as fractions of the picture, or of the font size where said.
SIDE_MARGIN = 0.04  # of the width, kept free of ink on the left and on the right
EDGE_MARGIN = 0.03  # of the shorter side, between the top/bottom edge and the text
BOX_HEIGHT = 0.22  # of the height: the most one caption (top or bottom) may cover
MAX_LINES = 3  # lines a caption may take before it is set below the normal minimum size
# Font size bounds, of the picture's mean side (square root of its area), so that a
# landscape photo gets type as bold as a square one of the same area.
MAX_FONT = 0.14  # a one-word caption stays big, not a billboard
MIN_FONT = 0.025  # below it, text wraps onto more lines or is cut
FLOOR_FONT = 6  # px: nothing smaller, however tiny the picture
STROKE = 1 / 13  # outline width, of the font size
LINE_GAP = 0.2  # of the font size, from one line's baseline to the next line's cap height
SLACK = 2  # px per line, for ink that rounds outwards to whole pixels
REF_SIZE = 200  # px: the size at which widths and metrics are measured, then scaled
# px: a still picture whose long side is shorter is enlarged to it (never past the
# meme's cap); a 64 px sticker kept at its size could only carry 6 px type.
ENLARGED_LONG_SIDE = 400
ENLARGED_SHORT_SIDE = 200  # and a narrow picture's short side, within the size cap
ELLIPSIS = "…"
CLOSING_QUOTES = "\"'\u2019\u201d\u00bb)"
#: Words that keep their capital in the middle of a sentence: I (and I've, I'm...), the
#: days and the months.
ALWAYS_CAPITAL = (
    r"(I(['\u2019]\w+)?|((Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|January|February|March"
    r"|April|May|June|July|August|September|October|November|December)(s|['\u2019]s)?)\W*"
)
# Between words: Bebas Neue's own space (0.155 em) is nearly all eaten by the two
# outlines; a four-per-em space (0.25 em, no ink) leaves a readable gap.
WORD_GAP = "\u2005"

# Modern: a white band above the photo, sized by the photo's width.
MODERN_FONT = (0.035, 0.065)  # min and max font size, of the width
MODERN_PAD = 0.05  # of the width: the band's padding around the text
MODERN_MAX_BAND = 0.8  # of the photo's height (at least its width): the band's tallest

# Poster: photo, thin white border inside a black frame, title and a line below.
# Sizes are of the photo's mean side (as classic type is), so a tall photo's poster gets
# a title as big as a square one's, fitted to its width.
POSTER_MARGIN = 0.09  # black on the sides of the photo and above it
POSTER_GAP = 0.008  # black between the photo and its white border
POSTER_BORDER = 0.004  # the white border line
POSTER_TITLE = (0.06, 0.12)  # min and max title size
POSTER_LINE = (0.03, 0.045)  # min and max size of the line below
POSTER_TEXT_GREY = (221, 221, 221)  # the smaller line, a little dimmer than the title

# Faces: a label under each face.
LABEL_FONT = (0.3, 0.07)  # size, of the face's width, and at most this of the mean side
LABEL_WIDTH = 1.8  # of the face's width: room for its label
LABEL_GAP = 0.15  # of the label's size: from the face's box, the caption and other labels
LABEL_SHRINK = (1.0, 0.8, 0.64)  # sizes a label is tried at, of its own, before it is left out
#: Words a face's label is picked from, per expression (the n-th face takes the n-th word).
FACE_WORDS: dict[str, tuple[str, ...]] = {
    "angry": ("fuming", "so done", "livid", "seething"),
    "disgust": ("ew", "nope", "grossed out", "appalled"),
    "fear": ("panicking", "spooked", "send help", "nervous"),
    "happy": ("thriving", "beaming", "living", "vibing"),
    "sad": ("crushed", "defeated", "heartbroken", "mopey"),
    "surprise": ("shook", "wait what", "stunned", "gobsmacked"),
    "neutral": ("unbothered", "meh", "no thoughts", "chilling"),
}

# Watermark: small text in a corner (bottom right unless a caption is there).
WATERMARK_FONT = 0.028  # of the meme's mean side
WATERMARK_MARGIN = 0.015  # of the meme's shorter side, from the two edges
WATERMARK_OPACITY = 0.7

Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]
FaceMark = tuple[Box, str]
"""A face's box (x1, y1, x2, y2) and its expression."""


@dataclass(frozen=True)
class Lettering:
    """How a style sets its text: typeface, case, outline and line spacing."""

    typeface: Typeface = typeset.MEME
    upper: bool = True
    stroke: float = STROKE  # outline width, of the font size; 0 for none
    line_gap: float = LINE_GAP  # of the font size, from a baseline to the next line's top
    max_lines: int = MAX_LINES
    word_gap: str = WORD_GAP


CLASSIC = Lettering()
MODERN = Lettering(typeset.SANS, upper=False, stroke=0, line_gap=0.45, max_lines=5, word_gap=" ")
POSTER_TITLE_LETTERING = Lettering(typeset.SERIF, stroke=0, max_lines=2, word_gap=" ")
POSTER_LINE_LETTERING = Lettering(
    typeset.SANS, upper=False, stroke=0, line_gap=0.45, max_lines=3, word_gap=" "
)
LABEL_LETTERING = Lettering(max_lines=2)
WATERMARK_LETTERING = Lettering(typeset.SANS_BOLD, upper=False, stroke=0, max_lines=1, word_gap=" ")


@dataclass(frozen=True)
class Rendered:
    """A meme, the box ``(x1, y1, x2, y2)`` in it where the picture was drawn, and the
    boxes its text covers (which the watermark keeps clear of)."""

    image: Image.Image
    photo_box: tuple[int, int, int, int]
    text_boxes: tuple[IntBox, ...] = ()


Style = Callable[[Image.Image, Caption, Sequence[FaceMark]], Rendered]


@lru_cache(maxsize=16)
def _metrics(lettering: Lettering) -> tuple[float, float, float]:
    """Top of the tallest letter, descent and word gap advance, as fractions of the size.

    Capitals for upper-case lettering; mixed case also reaches up to the ascenders.
    """
    ref = typeset.font(lettering.typeface.primary, REF_SIZE)
    top = -ref.getbbox("H" if lettering.upper else "Hbdfhklt", anchor="ls")[1]
    descent = ref.getbbox(",;QJ()" if lettering.upper else ",;QJ()gjpqy", anchor="ls")[3]
    gap = ref.getlength(lettering.word_gap)
    return top / REF_SIZE, descent / REF_SIZE, gap / REF_SIZE


def _stroke(size: int, lettering: Lettering) -> int:
    return max(1, round(size * lettering.stroke)) if lettering.stroke else 0


def _pitch(size: int, lettering: Lettering) -> int:
    """Baseline-to-baseline distance."""
    top, _, _ = _metrics(lettering)
    return round(size * (top + lettering.line_gap))


@dataclass(frozen=True)
class TextBlock:
    """The lines of one caption, the font size they are set at, and how."""

    lines: tuple[str, ...]
    size: int
    lettering: Lettering = CLASSIC

    @property
    def stroke(self) -> int:
        return _stroke(self.size, self.lettering)

    @property
    def pitch(self) -> int:
        return _pitch(self.size, self.lettering)

    @property
    def height(self) -> int:
        return _block_height(self.size, len(self.lines), self.lettering)


def _block_height(size: int, lines: int, lettering: Lettering) -> int:
    """Height ``lines`` lines need at ``size``, outline included and a descent always reserved."""
    top, descent, _ = _metrics(lettering)
    return (
        round(size * (top + descent))
        + (lines - 1) * _pitch(size, lettering)
        + 2 * _stroke(size, lettering)
    )


def _greedy(widths: Sequence[float], gap: float, limit: float) -> list[int]:
    """Words per line when each line takes as many words as fit (a too-wide word goes alone)."""
    counts: list[int] = []
    used = 0.0
    for width in widths:
        if counts and used + gap + width <= limit:
            counts[-1] += 1
            used += gap + width
        else:
            counts.append(1)
            used = width
    return counts


def _balanced(widths: Sequence[float], gap: float, lines: int) -> list[int]:
    """Words per line for ``lines`` lines, making the widest line as narrow as it can be.

    Greedy wrapping fills the first lines and leaves a short last one; evening
    them out reads better and never needs more width than greedy did. Trying
    every split would cost C(words - 1, lines - 1) tries (minutes for the
    modern style's five lines of a 200-word caption), so the narrowest width
    is found by bisecting the possible line widths with a greedy fill, and the
    cuts are then made as early as that width allows (among equally narrow
    splits, the one with the shortest first lines).
    """
    ends = (0.0, *accumulate(widths))
    count = len(widths)

    def span(start: int, end: int) -> float:
        return ends[end] - ends[start] + gap * (end - start - 1)

    def needed(start: int, limit: float) -> float:
        """Fewest lines ``widths[start:]`` takes with no line wider than ``limit``."""
        taken = 0
        while start < count:
            end = start + 1
            if span(start, end) > limit:
                return math.inf
            while end < count and span(start, end + 1) <= limit:
                end += 1
            taken, start = taken + 1, end
        return taken

    candidates = sorted({span(a, b) for a in range(count) for b in range(a + 1, count + 1)})
    low, high = 0, len(candidates) - 1  # the whole text on one line always fits
    while low < high:
        middle = (low + high) // 2
        if needed(0, candidates[middle]) <= lines:
            high = middle
        else:
            low = middle + 1
    limit = candidates[low]
    cuts, start = [0], 0
    for left in range(lines - 1, 0, -1):  # lines still to fill after this one
        start = next(
            end
            for end in range(start + 1, count)
            if span(start, end) <= limit and count - end >= left and needed(end, limit) <= left
        )
        cuts.append(start)
    return [b - a for a, b in pairwise((*cuts, count))]


def _join(words: Sequence[str], counts: Sequence[int], gap: str) -> tuple[str, ...]:
    lines, start = [], 0
    for count in counts:
        lines.append(gap.join(words[start : start + count]))
        start += count
    return tuple(lines)


def _limit(size: int, width: int, lettering: Lettering) -> float:
    """Room for a line's advances at ``size``, in reference-size units."""
    return (width - 2 * _stroke(size, lettering) - SLACK) * REF_SIZE / size


def _ref_length(text: str, lettering: Lettering) -> float:
    return typeset.length(text, lettering.typeface, REF_SIZE)


def fit_text(
    text: str,
    width: int,
    height: int,
    *,
    max_size: int,
    min_size: int,
    lettering: Lettering = CLASSIC,
) -> TextBlock | None:
    """Set ``text`` as large as it fits in a ``width`` × ``height`` box (in upper case for
    upper-case lettering such as the classic one).

    The largest size from ``min_size`` to ``max_size`` at which the text wraps
    onto at most ``lettering.max_lines`` lines inside the box wins. When even
    ``min_size`` is too big, the text is set at ``min_size`` on as many lines
    as the box holds, long words broken, and what still does not fit is cut
    with an ellipsis: the caption shrinks or shortens, it never spills off the
    picture. Returns None for text with nothing to draw.
    """
    # Composed, so that "é" typed as "e" and an accent (as macOS often sends it) is the
    # one character a font has rather than a letter and a mark it may lack.
    text = unicodedata.normalize("NFC", text)
    words = (typeset.upper(text) if lettering.upper else text).split()
    if not words:
        return None
    widths = [_ref_length(word, lettering) for word in words]
    gap = _metrics(lettering)[2] * REF_SIZE

    widest_word = max(widths)

    def lines_at(size: int) -> list[int] | None:
        limit = _limit(size, width, lettering)
        if widest_word > limit:
            return None
        counts = _greedy(widths, gap, limit)
        if (
            len(counts) > lettering.max_lines
            or _block_height(size, len(counts), lettering) > height
        ):
            return None
        return counts

    min_size = min(min_size, max_size)
    best = lines_at(min_size)
    if best is None:
        return _squeeze(words, width, height, min_size, lettering)
    low, high = min_size, max_size  # ``low`` always fits; find the largest size that does
    while low < high:
        middle = (low + high + 1) // 2
        counts = lines_at(middle)
        if counts is None:
            high = middle - 1
        else:
            low, best = middle, counts
    lines = _join(words, _balanced(widths, gap, len(best)), lettering.word_gap)
    return TextBlock(lines, low, lettering)


def _squeeze(
    words: Sequence[str], width: int, height: int, size: int, lettering: Lettering
) -> TextBlock:
    """Text too long for the box even at ``size``: break, wrap freely, cut with an ellipsis."""
    limit = _limit(size, width, lettering)
    pieces = [piece for word in words for piece in _break_word(word, limit, lettering)]
    widths = [_ref_length(piece, lettering) for piece in pieces]
    counts = _greedy(widths, _metrics(lettering)[2] * REF_SIZE, limit)
    lines = list(_join(pieces, counts, lettering.word_gap))
    room = 1 + max(0, (height - _block_height(size, 1, lettering)) // _pitch(size, lettering))
    if len(lines) > room:
        lines = lines[:room]
        last = lines[-1]
        while last and _ref_length(last + ELLIPSIS, lettering) > limit:
            last = last[:-1].rstrip()
        lines[-1] = last + ELLIPSIS
    return TextBlock(tuple(lines), size, lettering)


def _break_word(word: str, limit: float, lettering: Lettering) -> list[str]:
    """``word`` cut into pieces no wider than ``limit`` (reference units), a letter at least."""
    pieces, current = [], ""
    for letter in word:
        if current and _ref_length(current + letter, lettering) > limit:
            pieces.append(current)
            current = ""
        current += letter
    pieces.append(current)
    return pieces


def fit_within(image: Image.Image, max_side: int, enlarge_to: int = 0) -> Image.Image:
    """An RGB copy of ``image`` whose long side is at most ``max_side`` and, when it
    was shorter than ``enlarge_to``, enlarged to ``enlarge_to``.

    Big pictures shrink first by a whole factor with ``reduce`` (a cheap box
    average), then by the remaining under-2× with OpenCV's bilinear resize.
    Measured on photos against a Lanczos reference, that matches Pillow's
    bilinear (within 1 dB PSNR from 1.3× to 1.9×) in about 40% of the time.
    Small ones grow with Lanczos, which keeps edges the sharpest of OpenCV's filters.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    if enlarge_to > max_side:
        raise ValueError(f"enlarge_to must not exceed max_side, got {enlarge_to} > {max_side}")
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    width, height = rgb.size
    long_side = max(width, height)
    if enlarge_to <= long_side <= max_side:
        return rgb.copy() if rgb is image else rgb
    target = max_side if long_side > max_side else enlarge_to
    scale = target / long_side
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale > 1:
        return Image.fromarray(cv2.resize(np.asarray(rgb), size, interpolation=cv2.INTER_LANCZOS4))
    factor = long_side // max_side
    if factor >= 2:
        rgb = rgb.reduce(factor)
    return Image.fromarray(cv2.resize(np.asarray(rgb), size, interpolation=cv2.INTER_LINEAR))


@lru_cache(maxsize=64)
def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


@dataclass(frozen=True)
class SetText:
    """A caption drawn and cropped to its ink: where its left edge goes, what to paint."""

    left: int
    ink: Ink
    outline: Image.Image | None  # the ink grown by the stroke, for outlined lettering

    @property
    def width(self) -> int:
        return self.ink.mask.width

    @property
    def height(self) -> int:
        return self.ink.mask.height

    def box_at(self, left: int, top: int) -> IntBox:
        """The box the ink covers with its top-left corner at (``left``, ``top``)."""
        return left, top, left + self.width, top + self.height


def _set(block: TextBlock, width: int) -> SetText | None:
    """``block`` centred across ``width``, cropped to its ink (outline included).

    All lines go into one grey mask; the outline is that mask dilated by a disc
    of the stroke's radius. It looks the same as FreeType's stroker (which
    ``ImageDraw.text(stroke_width=...)`` uses) at a fraction of the cost: one
    rasterisation per line instead of two, and one paste per caption instead
    of two per line. Cropping to the ink lets callers place the caption by its
    real extent, accents and descenders included. None when there is no ink.
    """
    size, stroke, pitch = block.size, block.stroke, block.pitch
    # Room on the canvas: two ems above the first baseline (capitals with stacked marks,
    # Ǘ or Ṏ, reach past one, and were cut flat), half an em below the last.
    above, below = 2 * size + stroke, size // 2 + stroke
    ink = typeset.set_lines(
        block.lines,
        block.lettering.typeface,
        size,
        width=width,
        first_baseline=above,
        pitch=pitch,
        height=above + (len(block.lines) - 1) * pitch + below,
    )
    bounds = ink.mask.getbbox()
    if bounds is None:
        return None
    left = max(0, bounds[0] - stroke)
    box = (left, bounds[1] - stroke, min(width, bounds[2] + stroke), bounds[3] + stroke)
    ink = ink.crop(box)
    outline = None
    if stroke:
        outline = Image.fromarray(cv2.dilate(np.asarray(ink.mask), _disc(stroke)))
    return SetText(left, ink, outline)


def _paint_outlined(image: Image.Image, text: SetText, top: int) -> None:
    """White text with a black outline, emoji in colour over it."""
    box = (text.left, top, text.left + text.width, top + text.height)
    fill = text.ink.mask
    # White where the fill is, black elsewhere, shown through the outline mask.
    image.paste(Image.merge("RGB", (fill, fill, fill)), box, text.outline)
    if text.ink.colour is not None:
        image.paste(text.ink.colour.convert("RGB"), box[:2], text.ink.colour.getchannel("A"))


def _font_bounds(width: int, height: int) -> tuple[int, int]:
    """Classic min and max font sizes for a ``width`` × ``height`` picture."""
    mean_side = math.sqrt(width * height)
    return (
        max(FLOOR_FONT, round(mean_side * MIN_FONT)),
        max(FLOOR_FONT, round(mean_side * MAX_FONT)),
    )


def _classic_band(image: Image.Image, text: str, *, at_top: bool) -> IntBox | None:
    """One classic caption against the top or the bottom edge; the box its ink covers."""
    width, height = image.size
    margin = max(1, round(width * SIDE_MARGIN))
    edge = max(1, round(min(width, height) * EDGE_MARGIN))
    min_size, max_size = _font_bounds(width, height)
    box_width, box_height = width - 2 * margin, round(height * BOX_HEIGHT)
    block = fit_text(text, box_width, box_height, max_size=max_size, min_size=min_size)
    drawn = None if block is None else _set(block, width)
    if drawn is None:
        return None
    top = edge if at_top else height - edge - drawn.height
    _paint_outlined(image, drawn, top)
    return drawn.box_at(drawn.left, top)


def _whole_picture(image: Image.Image) -> tuple[int, int, int, int]:
    return (0, 0, *image.size)


def _classic(image: Image.Image, caption: Caption, faces: Sequence[FaceMark]) -> Rendered:
    """Top text against the top edge, bottom text against the bottom edge."""
    boxes = (
        _classic_band(image, caption.top, at_top=True),
        _classic_band(image, caption.bottom, at_top=False),
    )
    return Rendered(image, _whole_picture(image), tuple(box for box in boxes if box))


def _one_line(caption: Caption) -> str:
    """Top and bottom read as one sentence, for styles with a single caption.

    Captions are written as two lines that each start with a capital ("Found
    money | In last year's coat"); run on, the second loses it, unless the top
    ends a sentence (closing quotes aside: '"Who's paying?" Everyone'), or the
    word is all capitals ("NASA"), the pronoun I ("I've", "I'm") or a day or month.
    """
    top, bottom = caption.top.strip(), caption.bottom.strip()
    if not (top and bottom):
        return top or bottom
    first = bottom.split()[0]
    ends_sentence = top.rstrip(CLOSING_QUOTES)[-1:] in tuple(".!?…:")
    named = re.fullmatch(ALWAYS_CAPITAL, first) is not None
    if not (ends_sentence or named or first.isupper()) and first[:1].isupper():
        bottom = bottom[0].lower() + bottom[1:]
    return f"{top} {bottom}"


def _modern(image: Image.Image, caption: Caption, faces: Sequence[FaceMark]) -> Rendered:
    """The whole caption in black sans type on a white band above the photo."""
    width, height = image.size
    pad = max(2, round(width * MODERN_PAD))
    block = fit_text(
        _one_line(caption),
        width - 2 * pad,
        max(round(height * MODERN_MAX_BAND), width),
        min_size=max(FLOOR_FONT, round(width * MODERN_FONT[0])),
        max_size=max(FLOOR_FONT, round(width * MODERN_FONT[1])),
        lettering=MODERN,
    )
    drawn = None if block is None else _set(block, width)
    if block is None or drawn is None:
        return Rendered(image, _whole_picture(image))
    # The band is as tall as the lines' full height (not their ink), so a caption without
    # descenders sits as high as one with them, plus the padding above and below.
    band = block.height + round(1.6 * pad)
    meme = Image.new("RGB", (width, band + height), "white")
    meme.paste(image, (0, band))
    top = (band - block.height) // 2 + (block.height - drawn.height) // 2
    typeset.paint(meme, drawn.ink, (drawn.left, top), (0, 0, 0))
    return Rendered(meme, (0, band, width, band + height), (drawn.box_at(drawn.left, top),))


def _poster(image: Image.Image, caption: Caption, faces: Sequence[FaceMark]) -> Rendered:
    """The demotivational poster: framed photo, a big title and a smaller line under it."""
    width, height = image.size
    mean_side = math.sqrt(width * height)
    margin = max(4, round(mean_side * POSTER_MARGIN))
    gap = max(1, round(mean_side * POSTER_GAP))
    border = max(1, round(mean_side * POSTER_BORDER))
    frame = gap + border  # from the photo's edge to the outer edge of its white border
    text_width = width + 2 * frame
    title = fit_text(
        caption.top,
        text_width,
        max(FLOOR_FONT, round(mean_side * 0.3)),
        min_size=max(FLOOR_FONT, round(mean_side * POSTER_TITLE[0])),
        max_size=max(FLOOR_FONT, round(mean_side * POSTER_TITLE[1])),
        lettering=POSTER_TITLE_LETTERING,
    )
    line = fit_text(
        caption.bottom,
        text_width,
        max(FLOOR_FONT, round(mean_side * 0.2)),
        min_size=max(FLOOR_FONT, round(mean_side * POSTER_LINE[0])),
        max_size=max(FLOOR_FONT, round(mean_side * POSTER_LINE[1])),
        lettering=POSTER_LINE_LETTERING,
    )
    title_height = title.height if title else 0
    line_height = line.height if line else 0
    space = round(margin * 0.45)  # between the frame and the title, and between the texts
    below = space + title_height + (space // 2 + line_height if line else 0) + round(margin * 0.8)
    outer = (width + 2 * (margin + frame), margin + 2 * frame + height + below)
    meme = Image.new("RGB", outer, "black")
    x, y = margin, margin  # the white border's outer corner
    meme.paste("white", (x, y, x + width + 2 * frame, y + height + 2 * frame))
    inner = x + border, y + border
    meme.paste("black", (*inner, inner[0] + width + 2 * gap, inner[1] + height + 2 * gap))
    meme.paste(image, (x + frame, y + frame))
    cursor = y + 2 * frame + height + space
    text_boxes = []
    for block, colour in ((title, (255, 255, 255)), (line, POSTER_TEXT_GREY)):
        if block is None:
            continue
        drawn = _set(block, outer[0])
        if drawn is not None:
            top = cursor + (block.height - drawn.height) // 2
            typeset.paint(meme, drawn.ink, (drawn.left, top), colour)
            text_boxes.append(drawn.box_at(drawn.left, top))
        cursor += block.height + space // 2
    photo_box = (x + frame, y + frame, x + frame + width, y + frame + height)
    return Rendered(meme, photo_box, tuple(text_boxes))


def face_word(expression: str, index: int) -> str:
    """The label for the ``index``-th face (from 0) showing ``expression``.

    Faces with the same expression get different words while the list lasts,
    so a row of happy faces does not read "THRIVING" five times.
    """
    words = FACE_WORDS.get(expression, (expression,))
    return words[index % len(words)]


def _faces(image: Image.Image, caption: Caption, faces: Sequence[FaceMark]) -> Rendered:
    """A classic caption at the top and, under each face, a word for its expression.

    A label goes under the chin, else above the head, else (for a face whose chin the
    caption covers, when that is no further than the face is tall) just under the
    caption: the first of those that keeps clear of the caption and of the labels set
    before it, and for the spot under the caption, of the other faces too (there it
    would read as another face's label). When no spot is clear, the label is tried
    smaller, and left out if it still does not fit: labels that run together
    ("UNBOTHEREDBEAMING") or sit far from their face mislead, and a face the caption
    hides needs none.
    """
    caption_box = _classic_band(image, _one_line(caption), at_top=True)
    taken = [] if caption_box is None else [caption_box]
    width, height = image.size
    mean_side = math.sqrt(width * height)
    seen: dict[str, int] = {}
    face_boxes = [tuple(round(value) for value in box) for box, _ in faces]
    for number, ((x1, y1, x2, y2), expression) in enumerate(faces):
        index = seen.get(expression, 0)
        seen[expression] = index + 1
        face_width = max(1.0, x2 - x1)
        size = max(FLOOR_FONT, round(min(face_width * LABEL_FONT[0], mean_side * LABEL_FONT[1])))
        word = face_word(expression, index)
        if not _labellable(image, word, (x1, y1, x2, y2)):
            continue
        others = face_boxes[:number] + face_boxes[number + 1 :]
        sizes = dict.fromkeys(max(FLOOR_FONT, round(size * shrink)) for shrink in LABEL_SHRINK)
        for tried in sizes:
            placed = _place_label(image, word, (x1, y1, x2, y2), tried, caption_box, taken, others)
            if placed is not None:
                taken.append(placed)
                break
    return Rendered(image, _whole_picture(image), tuple(taken))


def _label_room(face: Box, width: int) -> int:
    """How wide a face's label may be."""
    return min(width, round(max(1.0, face[2] - face[0]) * LABEL_WIDTH))


def _labellable(image: Image.Image, word: str, face: Box) -> bool:
    """Whether ``face`` is in the picture and wide enough for ``word`` at the smallest
    size, which a face a few pixels wide is not: its word would be cut into a stack of
    letters."""
    width, height = image.size
    x1, y1, x2, y2 = face
    if not (x1 < x2 and y1 < y2 and x2 > 0 and y2 > 0 and x1 < width and y1 < height):
        return False
    floor_length = _ref_length(typeset.upper(word), LABEL_LETTERING) * FLOOR_FONT / REF_SIZE
    return floor_length <= _label_room(face, width)


def _place_label(
    image: Image.Image,
    word: str,
    face: Box,
    size: int,
    caption_box: IntBox | None,
    taken: Sequence[IntBox],
    other_faces: Sequence[IntBox],
) -> IntBox | None:
    """Paint ``word`` at ``size`` in the first clear spot by ``face`` (see :func:`_faces`);
    the box it covers, or None where no spot is clear."""
    width, height = image.size
    x1, y1, x2, y2 = face
    room = _label_room(face, width)
    block = fit_text(word, room, 3 * size, min_size=FLOOR_FONT, max_size=size,
                     lettering=LABEL_LETTERING)
    drawn = None if block is None else _set(block, room)
    if drawn is None:
        return None
    # Centred on the face; tops inside the picture, in order of preference.
    left = round(min(max(0, (x1 + x2) / 2 - room / 2), width - room)) + drawn.left
    gap = size * LABEL_GAP
    below, above = round(y2 + gap), round(y1 - drawn.height - gap)
    spots = [(below, taken), (above, taken)] if below + drawn.height <= height else [(above, taken)]
    under_caption = None if caption_box is None else round(caption_box[3] + gap)
    if under_caption is not None and y2 - drawn.height < under_caption <= y2 + (y2 - y1):
        spots.append((under_caption, [*taken, *other_faces]))
    for top, obstacles in spots:
        top = min(max(0, top), height - drawn.height)
        box = drawn.box_at(left, top)
        if not any(_overlap(box, other, gap) for other in obstacles):
            _paint_outlined(image, SetText(left, drawn.ink, drawn.outline), top)
            return box
    return None


def _overlap(box: IntBox, other: IntBox, gap: float) -> bool:
    """Whether ``box`` comes within ``gap`` pixels of ``other``."""
    return (
        box[0] < other[2] + gap
        and other[0] < box[2] + gap
        and box[1] < other[3] + gap
        and other[1] < box[3] + gap
    )


_STYLES: dict[str, Style] = {
    "classic": _classic,
    "modern": _modern,
    "poster": _poster,
    "faces": _faces,
}

#: Names accepted by ``render_meme(style=...)``, for CLIs and forms to offer.
STYLES: tuple[str, ...] = tuple(_STYLES)


def _watermark(image: Image.Image, text: str, text_boxes: Sequence[IntBox]) -> None:
    """``text`` small and half-transparent on one line, in the bottom-right corner, or
    in the first other place clear of the caption's ``text_boxes``: the other corners,
    then against the right edge just above or below a caption."""
    width, height = image.size
    size = max(FLOOR_FONT, round(math.sqrt(width * height) * WATERMARK_FONT))
    margin = max(1, round(min(width, height) * WATERMARK_MARGIN))
    block = fit_text(
        text, width - 2 * margin, _block_height(size, 1, WATERMARK_LETTERING),
        min_size=FLOOR_FONT, max_size=size, lettering=WATERMARK_LETTERING,
    )
    if block is None:
        return
    # A canvas with an em to spare, so no glyph's overhang is cut off.
    advance = _ref_length(block.lines[0], block.lettering) * block.size / REF_SIZE
    drawn = _set(block, math.ceil(advance) + 2 * size)
    if drawn is None:
        return
    right, bottom = width - margin - drawn.width, height - margin - drawn.height
    places = [(right, bottom), (margin, bottom), (right, margin), (margin, margin)]
    places += [(right, box[1] - margin - drawn.height) for box in text_boxes]
    places += [(right, box[3] + margin) for box in text_boxes]
    boxes = [drawn.box_at(left, top) for left, top in places if 0 <= top <= height - drawn.height]
    left, top = next(
        (box[:2] for box in boxes if not any(_overlap(box, other, margin) for other in text_boxes)),
        (right, bottom),
    )
    shadow = drawn.ink.mask.point(lambda value: round(value * WATERMARK_OPACITY * 0.6))
    glow = Image.fromarray(cv2.dilate(np.asarray(shadow), _disc(max(1, size // 12))))
    image.paste("black", drawn.box_at(left, top), glow)
    faded = drawn.ink.mask.point(lambda value: round(value * WATERMARK_OPACITY))
    image.paste("white", drawn.box_at(left, top), faded)


def render(
    image: Image.Image,
    caption: Caption,
    *,
    max_side: int = 1600,
    style: str = "classic",
    faces: Sequence[FaceMark] = (),
    watermark: str = "",
    enlarge_to: int = ENLARGED_LONG_SIDE,
) -> Rendered:
    """The meme: ``image`` sized to fit ``max_side`` with ``caption`` set in ``style``.

    ``image`` is expected upright (the loader applies EXIF orientation) and is
    never modified. ``faces`` are boxes in ``image``'s own pixels with their
    expressions (the ``faces`` style labels them; the others ignore them): the
    renderer is the one that resizes, so it scales them with the picture.
    ``watermark`` is set small in a corner clear of the caption when not empty.

    The whole meme, band or frame included, fits ``max_side``: a style that
    adds to the picture gets a picture shrunk to leave room for it. A picture
    whose long side is under ``enlarge_to`` is enlarged to it, within that cap
    (0 keeps it as it is: an animation's frames, which Lanczos would fill with new
    colours that take seconds to map back onto a GIF's palette), and a narrow one
    further, until its short side is ``ENLARGED_SHORT_SIDE``.
    """
    try:
        draw_style = _STYLES[style]
    except KeyError:
        raise ValueError(f"unknown style {style!r}; expected one of: {', '.join(STYLES)}") from None
    picture_side = max_side
    long_side = _enlarged_long_side(image, enlarge_to)
    while True:
        picture = fit_within(image, picture_side, min(long_side, picture_side))
        scale = picture.width / image.width
        marks = [(tuple(value * scale for value in box), expression) for box, expression in faces]
        rendered = draw_style(picture, caption, marks)
        overshoot = max(rendered.image.size) / max_side
        if overshoot <= 1 or picture_side <= 1:
            break
        picture_side = max(1, min(picture_side - 1, math.floor(max(picture.size) / overshoot)))
    if watermark.strip():
        _watermark(rendered.image, watermark, rendered.text_boxes)
    return rendered


def _enlarged_long_side(image: Image.Image, enlarge_to: int) -> int:
    """The long side a picture is enlarged to: ``enlarge_to``, or more for a narrow picture.
    A 16×160 strip enlarged to 40×400 had its caption set 6 px high across 40 px; its
    short side at 200 px gives the caption room to be read."""
    if not enlarge_to:
        return 0
    width, height = image.size
    return max(enlarge_to, math.ceil(ENLARGED_SHORT_SIDE * max(width, height) / min(width, height)))


def render_meme(
    image: Image.Image,
    caption: Caption,
    *,
    max_side: int = 1600,
    style: str = "classic",
    faces: Sequence[FaceMark] = (),
    watermark: str = "",
) -> Image.Image:
    """The meme's picture alone; see :func:`render`, which also says where the photo went."""
    return render(
        image, caption, max_side=max_side, style=style, faces=faces, watermark=watermark
    ).image

"""The classic meme renderer: size, aspect, and text that is drawn, upper-case and inside."""

from __future__ import annotations

import random
from itertools import combinations, pairwise

import numpy as np
import pytest
from PIL import Image

from memegen.captions import Caption
from memegen.render import (
    ENLARGED_LONG_SIDE,
    MODERN,
    STYLES,
    _balanced,
    fit_text,
    render,
    render_meme,
)

GREY = (128, 128, 128)
SIZES = {"max_size": 84, "min_size": 15}
LONG = (
    "this caption keeps going and going far beyond anything a sensible meme would say,"
    " with words like incomprehensibilities and a very long unbroken"
    " Llanfairpwllgwyngyllgogerychwyndrobwllllantysiliogogogoch to test the wrapping"
)


def grey(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), GREY)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def text_mask(image: Image.Image) -> np.ndarray:
    """Pixels the renderer changed on a plain grey picture."""
    return np.any(pixels(image) != GREY, axis=2)


def test_a_big_picture_is_capped_on_its_long_side_keeping_its_aspect() -> None:
    meme = render_meme(grey(4000, 3000), Caption("top", "bottom"), max_side=1600)
    assert meme.size == (1600, 1200)
    tall = render_meme(grey(1000, 3000), Caption("top", "bottom"), max_side=900)
    assert tall.size == (300, 900)


def test_an_odd_aspect_ratio_is_kept_to_the_pixel() -> None:
    meme = render_meme(grey(3001, 1999), Caption("top", ""), max_side=1000)
    assert meme.width == 1000
    assert abs(meme.height - 1999 * 1000 / 3001) <= 0.5


def test_a_picture_between_the_minimum_and_the_cap_keeps_its_size() -> None:
    for size in [(ENLARGED_LONG_SIDE, 300), (640, 480), (1600, 1200)]:
        assert render_meme(grey(*size), Caption("top", "bottom"), max_side=1600).size == size


def test_a_small_picture_is_enlarged_to_the_minimum_keeping_its_aspect() -> None:
    meme = render_meme(grey(120, 90), Caption("top", "bottom"), max_side=1600)
    assert meme.size == (ENLARGED_LONG_SIDE, ENLARGED_LONG_SIDE * 3 // 4)


@pytest.mark.parametrize(("size", "enlarged"), [
    ((16, 160), (160, 1600)),  # its short side reaches 200 only beyond the cap
    ((50, 500), (160, 1600)),
    ((1000, 100), (1600, 160)),
    ((600, 200), (600, 200)),  # already 200 across
])
def test_a_narrow_picture_is_enlarged_until_its_caption_has_room(size, enlarged) -> None:
    """A 16×160 strip used to become 40×400, its caption set 6 px high."""
    assert render_meme(grey(*size), Caption("top", "bottom"), max_side=1600).size == enlarged


def test_an_enlarged_picture_never_passes_the_cap() -> None:
    assert render_meme(grey(64, 48), Caption("top", "bottom"), max_side=300).size == (300, 225)


def test_type_on_an_enlarged_sticker_is_as_big_as_on_a_picture_of_the_minimum_size() -> None:
    caption = Caption("sticker", "")
    small = text_mask(render_meme(grey(64, 64), caption))
    large = text_mask(render_meme(grey(ENLARGED_LONG_SIDE, ENLARGED_LONG_SIDE), caption))
    assert np.array_equal(small, large)


def test_an_enlarged_picture_fills_the_whole_classic_meme() -> None:
    rendered = render(grey(100, 100), Caption("top", "bottom"))
    assert rendered.photo_box == (0, 0, ENLARGED_LONG_SIDE, ENLARGED_LONG_SIDE)


def test_a_picture_asked_not_to_be_enlarged_keeps_its_size() -> None:
    assert render(grey(100, 80), Caption("top", "bottom"), enlarge_to=0).image.size == (100, 80)


def test_the_result_is_rgb_and_the_input_is_left_untouched() -> None:
    source = grey(300, 200)
    meme = render_meme(source, Caption("top", "bottom"))
    assert meme.mode == "RGB"
    assert meme is not source
    assert source.getcolors() == [(300 * 200, GREY)]


def test_a_non_rgb_picture_is_converted() -> None:
    meme = render_meme(Image.new("L", (400, 300), 128), Caption("grey", "scale"))
    assert meme.mode == "RGB"
    assert meme.size == (400, 300)


def test_text_is_drawn_white_with_a_black_outline_in_both_bands() -> None:
    meme = render_meme(grey(600, 400), Caption("hello there", "general"))
    band = round(400 * 0.25)
    for part in (pixels(meme)[:band], pixels(meme)[-band:]):
        assert np.all(part == 255, axis=2).sum() > 200, "white fill"
        assert np.all(part == 0, axis=2).sum() > 200, "black outline"
    middle = pixels(meme)[band:-band]
    assert np.all(middle == GREY), "nothing drawn between the captions"


def test_only_the_sides_given_are_drawn() -> None:
    top_only = text_mask(render_meme(grey(600, 400), Caption("only the top", "")))
    assert top_only[:100].any()
    assert not top_only[200:].any()
    bottom_only = text_mask(render_meme(grey(600, 400), Caption("", "only the bottom")))
    assert not bottom_only[:200].any()
    assert bottom_only[300:].any()


def test_text_is_set_in_upper_case() -> None:
    lower = render_meme(grey(500, 300), Caption("shout it", "louder"))
    upper = render_meme(grey(500, 300), Caption("SHOUT IT", "LOUDER"))
    assert np.array_equal(pixels(lower), pixels(upper))


def test_the_same_caption_renders_the_same_pixels() -> None:
    caption = Caption("same input", "same meme")
    assert np.array_equal(
        pixels(render_meme(grey(400, 300), caption)), pixels(render_meme(grey(400, 300), caption))
    )


def test_text_is_centred() -> None:
    mask = text_mask(render_meme(grey(800, 600), Caption("centred", "")))
    columns = np.flatnonzero(mask.any(axis=0))
    left_gap, right_gap = columns[0], 800 - 1 - columns[-1]
    assert abs(left_gap - right_gap) <= 4


def test_a_short_caption_is_set_larger_than_a_long_one() -> None:
    short = fit_text("yes", 700, 130, **SIZES)
    long = fit_text("a caption with rather more words in it than usual", 700, 130, **SIZES)
    assert short is not None and long is not None
    assert short.size == 84, "a short caption stops at the size cap"
    assert long.size < short.size
    assert 1 < len(long.lines) <= 3


def test_wrapped_lines_are_balanced_and_upper_case() -> None:
    block = fit_text("when the code compiles on the first try", 700, 130, **SIZES)
    assert block is not None and len(block.lines) == 2
    assert all(line == line.upper() for line in block.lines)
    widths = [len(line) for line in block.lines]
    assert max(widths) - min(widths) <= 6


def _widest(widths: list[float], gap: float, counts: list[int]) -> float:
    ends = [0, *np.cumsum(counts)]
    return max(sum(widths[a:b]) + gap * (b - a - 1) for a, b in pairwise(ends))


def test_balanced_lines_are_as_narrow_as_the_best_split() -> None:
    rng = random.Random(7)
    for _ in range(300):
        widths = [float(rng.randint(1, 9) * 10) for _ in range(rng.randint(1, 10))]
        lines = rng.randint(1, len(widths))
        counts = _balanced(widths, 5.0, lines)
        assert len(counts) == lines and min(counts) >= 1 and sum(counts) == len(widths)
        best = min(
            _widest(widths, 5.0, [b - a for a, b in pairwise((0, *cuts, len(widths)))])
            for cuts in combinations(range(1, len(widths)), lines - 1)
        )
        assert _widest(widths, 5.0, counts) == pytest.approx(best)


def test_two_hundred_short_words_split_evenly_over_five_lines() -> None:
    # Trying every split, as the first version did, is 63 million tries here: minutes for one
    # request. Speed is the benchmarks' business; this only has to finish.
    assert _balanced([10.0] * 200, 5.0, 5) == [40] * 5
    block = fit_text(" ".join("a" * 120), 1100, 1600, min_size=38, max_size=72, lettering=MODERN)
    assert block is not None and len(block.lines) == 5


def test_text_too_long_even_at_the_minimum_size_is_cut_with_an_ellipsis() -> None:
    block = fit_text(LONG * 4, 300, 60, **SIZES)
    assert block is not None
    assert block.size == SIZES["min_size"]
    assert block.lines[-1].endswith("…")


def test_blank_text_has_nothing_to_fit() -> None:
    assert fit_text("  \t ", 300, 60, **SIZES) is None


@pytest.mark.parametrize("size", [(800, 600), (300, 900), (1600, 200)])
def test_long_text_stays_inside_the_side_margins_and_its_band(size: tuple[int, int]) -> None:
    width, height = size
    mask = text_mask(render_meme(grey(width, height), Caption(LONG, LONG)))
    assert mask.any()
    margin = int(width * 0.04) - 1
    assert not mask[:, :margin].any(), "ink in the left margin"
    assert not mask[:, width - margin :].any(), "ink in the right margin"
    rows = mask.any(axis=1)
    assert not rows[0] and not rows[-1], "ink touches the top or bottom edge"
    # Each caption keeps to its band (a quarter of the height, margins included).
    assert not rows[round(height * 0.26) : round(height * 0.74)].any()


def test_marks_stacked_high_above_a_capital_are_not_cut_off() -> None:
    """The canvas held one em above the baseline, and cut such marks flat at its top."""
    from memegen.render import _set, fit_text

    def ink_height(text: str) -> int:
        return _set(fit_text(text, 400, 300, max_size=60, min_size=60), 400).height

    assert ink_height("Z\u030d\u030e\u0304\u0305") > ink_height("Z\u030d") + 10


def test_a_single_unbreakable_word_wider_than_the_picture_still_fits() -> None:
    mask = text_mask(render_meme(grey(200, 150), Caption("A" * 120, "")))
    assert mask.any()
    assert not mask[:, 0].any() and not mask[:, -1].any()


@pytest.mark.parametrize("size", [(40, 30), (16, 16), (20, 600), (3000, 40), (5000, 500)])
def test_tiny_and_extreme_pictures_render(size: tuple[int, int]) -> None:
    meme = render_meme(grey(*size), Caption("tiny picture", "still a meme"))
    assert min(meme.size) >= 1
    assert ENLARGED_LONG_SIDE <= max(meme.size) <= 1600
    assert abs(meme.width / meme.height - size[0] / size[1]) < 0.1 * size[0] / size[1]


def test_empty_and_blank_captions_leave_the_picture_as_it_was() -> None:
    for caption in (Caption("", ""), Caption("   ", "\t")):
        assert not text_mask(render_meme(grey(300, 200), caption)).any()


def test_classic_is_the_default_style() -> None:
    assert STYLES[0] == "classic"
    caption = Caption("style", "default")
    assert np.array_equal(
        pixels(render_meme(grey(300, 200), caption)),
        pixels(render_meme(grey(300, 200), caption, style="classic")),
    )


def test_an_unknown_style_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown style 'comic'.*classic"):
        render_meme(grey(100, 100), Caption("a", "b"), style="comic")


def test_a_max_side_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_side"):
        render_meme(grey(100, 100), Caption("a", "b"), max_side=0)

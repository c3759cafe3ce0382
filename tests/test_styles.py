"""The styles beside classic (modern, poster, faces), and the watermark every style can carry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from memegen.captions import Caption
from memegen.render import FACE_WORDS, STYLES, face_word, fit_within, render, render_meme

GREY = (128, 128, 128)
CAPTION = Caption("when the tests pass", "on the first try")


def photo(width: int, height: int) -> Image.Image:
    """A noisy picture, so a test can tell the photo's pixels from anything drawn."""
    rng = np.random.default_rng(width * 7919 + height)
    return Image.fromarray(rng.integers(40, 216, (height, width, 3), dtype=np.uint8))


def grey(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), GREY)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def photo_is_intact(source: Image.Image, rendered_image: Image.Image, box) -> bool:
    x1, y1, x2, y2 = box
    return np.array_equal(pixels(rendered_image.crop((x1, y1, x2, y2))), pixels(source))


def test_every_style_is_offered_classic_first() -> None:
    assert STYLES == ("classic", "modern", "poster", "faces")


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("size", [(800, 600), (300, 900), (1600, 200), (40, 30), (16, 16)])
def test_every_style_fits_the_max_side_and_keeps_the_photo_unscaled_inside(
    style: str, size: tuple[int, int]
) -> None:
    source = photo(*size)
    result = render(source, CAPTION, style=style, max_side=500)
    assert max(result.image.size) <= 500
    assert result.image.mode == "RGB"
    x1, y1, x2, y2 = result.photo_box
    assert 0 <= x1 < x2 <= result.image.width and 0 <= y1 < y2 <= result.image.height
    # The photo keeps its aspect ratio whatever the style adds around it.
    assert abs((x2 - x1) / (y2 - y1) - size[0] / size[1]) < 0.1 * size[0] / size[1] + 0.1


def test_modern_puts_the_whole_caption_in_black_on_a_white_band_above_the_photo() -> None:
    source = photo(600, 400)
    result = render(source, CAPTION, style="modern")
    x1, y1, x2, y2 = result.photo_box
    assert (x1, x2, y2) == (0, 600, result.image.height) and y1 > 0
    assert photo_is_intact(source, result.image, result.photo_box), "no text over the photo"
    band = pixels(result.image)[:y1]
    assert np.all(band == 255, axis=2).mean() > 0.8, "mostly white"
    assert np.all(band < 60, axis=2).sum() > 500, "black text"
    # Top and bottom read as one sentence: more lines than the top text alone makes.
    top_only = render(source, Caption(CAPTION.top, ""), style="modern")
    assert y1 > top_only.photo_box[1]


def test_modern_keeps_the_case_the_caption_was_written_in() -> None:
    lower = render_meme(grey(500, 300), Caption("quiet words", ""), style="modern")
    upper = render_meme(grey(500, 300), Caption("QUIET WORDS", ""), style="modern")
    assert not np.array_equal(pixels(lower), pixels(upper))


def test_modern_without_text_is_just_the_photo() -> None:
    source = photo(450, 300)
    result = render(source, Caption("", " "), style="modern")
    assert result.image.size == (450, 300)
    assert photo_is_intact(source, result.image, result.photo_box)


def test_poster_frames_the_photo_in_black_with_a_white_border_and_a_title_below() -> None:
    source = photo(400, 300)
    result = render(source, CAPTION, style="poster")
    image = pixels(result.image)
    x1, y1, x2, y2 = result.photo_box
    assert photo_is_intact(source, result.image, result.photo_box)
    assert x1 > 20 and y1 > 20 and result.image.width - x2 == x1, "centred in a black frame"
    assert np.all(image[:10] == 0) and np.all(image[:, :10] == 0), "black outside"
    # Walking left from the photo: black gap, then the white border line, then black.
    row = image[(y1 + y2) // 2, :x1]
    assert np.all(row[-2] == 0) and np.any(np.all(row == 255, axis=1)), "thin white border"
    below = image[y2 + 10 :]
    assert np.all(below == 255, axis=2).sum() > 500, "a white title"
    assert np.all(below == (221, 221, 221), axis=2).sum() > 50, "a dimmer line under it"


def test_poster_title_is_upper_case_and_its_line_is_not() -> None:
    def poster(top: str, bottom: str) -> np.ndarray:
        return pixels(render_meme(grey(400, 300), Caption(top, bottom), style="poster"))

    assert np.array_equal(poster("motivation", "x"), poster("MOTIVATION", "x"))
    assert not np.array_equal(poster("x", "keep going"), poster("x", "KEEP GOING"))


def test_faces_writes_a_word_for_each_faces_expression_under_that_face() -> None:
    source = grey(800, 600)
    faces = [((100, 250, 220, 370), "happy"), ((560, 240, 680, 360), "sad")]
    image = pixels(render_meme(source, Caption("", ""), style="faces", faces=faces))
    drawn = np.any(image != GREY, axis=2)
    for (x1, _, x2, y2), _ in faces:
        under = drawn[y2 : y2 + 60, x1 - 40 : x2 + 40]
        assert np.all(image[y2 : y2 + 60, x1 - 40 : x2 + 40][under] == 255, axis=1).any()
        assert under.sum() > 200, "a label under the face"
    assert not drawn[:240].any(), "no caption, nothing at the top"
    assert not drawn[:, 260:540].any(), "nothing between the faces"


def test_faces_boxes_are_scaled_with_the_picture() -> None:
    faces = [((200, 500, 440, 740), "surprise")]
    big = render_meme(grey(1600, 1200), Caption("", ""), style="faces", faces=faces, max_side=800)
    drawn = np.any(pixels(big) != GREY, axis=2)
    rows, columns = np.nonzero(drawn)
    assert rows.min() >= 370 and columns.min() >= 40 and columns.max() <= 280


def test_faces_label_goes_above_a_face_at_the_bottom_edge() -> None:
    faces = [((130, 270, 270, 400), "angry")]
    drawn = np.any(pixels(render_meme(grey(400, 400), Caption("", ""), style="faces",
                                      faces=faces)) != GREY, axis=2)
    rows = np.flatnonzero(drawn.any(axis=1))
    assert rows.max() < 270


def test_faces_labels_keep_clear_of_the_caption() -> None:
    caption = Caption("a caption long enough to take two lines across", "the top of the photo")
    faces = [((360, 5, 440, 60), "happy")]  # its chin is inside the caption's band
    alone = pixels(render_meme(grey(800, 450), caption, style="faces"))
    labelled = pixels(render_meme(grey(800, 450), caption, style="faces", faces=faces))
    rows, columns = np.nonzero(np.any(alone != GREY, axis=2))
    box = np.s_[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    assert np.array_equal(labelled[box], alone[box]), "a label drawn over the caption"
    assert np.any(labelled != alone), "the label is drawn elsewhere"


def test_faces_labels_of_faces_close_together_keep_apart() -> None:
    # Labels are wider than the faces; one-word labels, so each label is one blob of ink.
    expressions = ["happy", "fear", "neutral", "happy", "surprise", "fear"]
    faces = [((100 + 55 * i, 200, 150 + 55 * i, 250), e) for i, e in enumerate(expressions)]
    image = render_meme(grey(600, 450), Caption("", ""), style="faces", faces=faces)
    drawn = np.any(pixels(image) != GREY, axis=2).astype(np.uint8)
    blobs, _ = cv2.connectedComponents(cv2.dilate(drawn, np.ones((3, 3), np.uint8)))
    assert blobs - 1 == len(faces), "labels that touch read as one word"


def test_faces_a_face_the_caption_hides_gets_no_label_far_below_it() -> None:
    """Set under a tall caption, its label landed on the foreheads of the next row."""
    caption = Caption("a caption long enough to take two lines across", "the top of the photo")
    faces = [((360, 5, 400, 40), "happy")]  # hidden, and far above the caption's foot
    alone = render(grey(800, 450), caption, style="faces")
    labelled = render(grey(800, 450), caption, style="faces", faces=faces)
    caption_foot = alone.text_boxes[0][3]
    changed = np.any(pixels(labelled.image) != pixels(alone.image), axis=2)
    assert not changed[caption_foot:].any()


def test_faces_labels_of_a_crowded_bottom_row_stay_by_their_faces_and_apart() -> None:
    """With no room under the chins, labels were set far off under the caption, or
    run together ("UNBOTHEREDBEAMING")."""
    expressions = ["happy", "sad", "surprise", "angry", "fear", "disgust", "neutral"] * 2
    faces = [((50 * i, 350, 50 * i + 50, 400), e) for i, e in enumerate(expressions[:12])]
    caption = Caption("Group photo", "Nobody knew when to smile")
    alone = pixels(render_meme(grey(600, 400), caption, style="faces"))
    image = pixels(render_meme(grey(600, 400), caption, style="faces", faces=faces))
    labels = np.any(image != alone, axis=2)
    assert np.flatnonzero(labels.any(axis=1)).min() >= 350 - 40, "every label by its face"
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        cv2.dilate(labels.astype(np.uint8), np.ones((3, 3), np.uint8))
    )
    assert count > 1
    widest = stats[1:, cv2.CC_STAT_WIDTH].max()
    assert widest <= 50 * 1.8 + 4, "two labels touch and read as one word"


@pytest.mark.parametrize("box", [
    (300, 200, 306, 206),  # 6 px: its word would be a stack of letters
    (300, 200, 300, 260),  # no width
    (700, 100, 760, 160),  # outside the picture
])
def test_faces_a_face_too_small_or_outside_the_picture_gets_no_label(box) -> None:
    plain = pixels(render_meme(grey(600, 400), Caption("", ""), style="faces"))
    labelled = render_meme(grey(600, 400), Caption("", ""), style="faces", faces=[(box, "happy")])
    assert np.array_equal(pixels(labelled), plain)


def test_faces_with_the_same_expression_get_different_words() -> None:
    assert face_word("happy", 0) != face_word("happy", 1)
    assert face_word("happy", len(FACE_WORDS["happy"])) == face_word("happy", 0)
    assert face_word("bored", 3) == "bored", "an unknown expression labels itself"


def test_faces_style_sets_the_whole_caption_at_the_top() -> None:
    image = pixels(render_meme(grey(600, 400), CAPTION, style="faces"))
    drawn = np.any(image != GREY, axis=2)
    assert drawn[:120].any() and not drawn[200:].any()


def test_the_watermark_is_off_by_default_and_sits_in_the_bottom_right_corner() -> None:
    source = photo(600, 400)
    plain = pixels(render_meme(source, Caption("", "")))
    assert np.array_equal(plain, pixels(fit_within(source, 1600)))
    marked = pixels(render_meme(source, Caption("", ""), watermark="MemeGen"))
    changed = np.any(marked != plain, axis=2)
    rows, columns = np.nonzero(changed)
    assert rows.min() > 400 * 0.85 and columns.min() > 600 * 0.7
    assert rows.max() < 400 - 3 and columns.max() < 600 - 3, "kept off the edges"


@pytest.mark.parametrize("style", STYLES)
def test_the_watermark_keeps_clear_of_the_caption_on_one_line(style: str) -> None:
    """It was set over a wide bottom caption, and broken mid-word where it did not fit."""
    wide = Caption("When the build is green", "And nobody knows why it was red")
    source = grey(500, 300)
    plain = pixels(render(source, wide, style=style).image)
    rendered = render(source, wide, style=style, watermark="memegen.example")
    changed = np.argwhere(np.any(pixels(rendered.image) != plain, axis=2))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    for x1, y1, x2, y2 in rendered.text_boxes:
        assert right < x1 or left >= x2 or bottom < y1 or top >= y2, "over the caption"
    assert bottom - top < 40, "one line"


@pytest.mark.parametrize("style", STYLES)
def test_the_watermark_is_drawn_in_every_style(style: str) -> None:
    plain = render_meme(grey(400, 300), CAPTION, style=style)
    marked = render_meme(grey(400, 300), CAPTION, style=style, watermark="MemeGen")
    assert not np.array_equal(pixels(plain), pixels(marked))


@pytest.mark.parametrize(
    ("caption", "sentence"),
    [
        (Caption("Found money", "In last year's coat"), "Found money in last year's coat"),
        (Caption("Monday again?", "Yes."), "Monday again? Yes."),
        (Caption("The boss says", "I can go early"), "The boss says I can go early"),
        (Caption("", "Only the bottom"), "Only the bottom"),
        # These kept their capital: "i've" and "monday" were lower-cased.
        (Caption("Traffic lights", "I've been waiting"), "Traffic lights I've been waiting"),
        (Caption("Pretending", "I\u2019m fine"), "Pretending I\u2019m fine"),
        (Caption("Same energy", "Monday to Sunday"), "Same energy Monday to Sunday"),
        (Caption("Before", "Friday's deadline"), "Before Friday's deadline"),
        (Caption("Me on", "Mondays"), "Me on Mondays"),
        (Caption("Me", "Is this it?"), "Me is this it?"),
        (Caption('"Who goes first?"', "Not me"), '"Who goes first?" Not me'),
        (Caption("Breaking", "NASA called"), "Breaking NASA called"),
    ],
)
def test_top_and_bottom_run_on_as_one_sentence(caption: Caption, sentence: str) -> None:
    one_line = render_meme(grey(500, 300), caption, style="modern")
    as_typed = render_meme(grey(500, 300), Caption(sentence, ""), style="modern")
    assert np.array_equal(pixels(one_line), pixels(as_typed))

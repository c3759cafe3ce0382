import io

import numpy as np
import pytest
from PIL import Image

from memegen import LABELS
from memegen.config import Settings
from memegen.pipeline import (
    GROUP,
    MIXED,
    MIXED_TOP_BELOW,
    NO_FACE,
    Analysis,
    FaceReading,
    Pipeline,
    choose_mood,
)

from sample_images import astronaut_jpeg


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(Settings(output_max_side=400))


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_astronaut_becomes_a_happy_meme_with_a_happy_caption(pipeline):
    meme = pipeline.make_meme(astronaut_jpeg(), seed=3)
    assert meme.mood == "happy"
    assert meme.caption in pipeline.captions.captions("happy")
    assert len(meme.analysis.faces) == 1
    assert meme.image.size == (400, 400)


def test_photo_without_a_face_gets_a_no_face_caption(pipeline):
    rng = np.random.default_rng(0)
    sky = np.linspace(80, 220, 300, dtype=np.uint8)[:, None, None].repeat(400, 1).repeat(3, 2)
    sky = np.clip(sky + rng.normal(0, 3, sky.shape), 0, 255).astype(np.uint8)
    meme = pipeline.make_meme(_jpeg(Image.fromarray(sky)), seed=1)
    assert meme.analysis.faces == []
    assert meme.mood == NO_FACE
    assert meme.caption in pipeline.captions.captions(NO_FACE)


def test_given_text_replaces_only_its_own_line(pipeline):
    picked = pipeline.make_meme(astronaut_jpeg(), seed=5).caption
    meme = pipeline.make_meme(astronaut_jpeg(), seed=5, top="my own words")
    assert (meme.caption.top, meme.caption.bottom) == ("my own words", picked.bottom)


def test_same_seed_gives_the_same_meme(pipeline):
    first = pipeline.make_meme(astronaut_jpeg(), seed=11)
    second = pipeline.make_meme(astronaut_jpeg(), seed=11)
    assert first.caption == second.caption
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))


def test_boxes_are_reported_in_the_original_pictures_pixels(pipeline):
    small = pipeline.analyze(astronaut_jpeg())
    big_photo = Image.open(io.BytesIO(astronaut_jpeg())).resize((3072, 3072))
    big = pipeline.analyze(_jpeg(big_photo))
    assert (big.width, big.height) == (3072, 3072)
    scaled = np.array(small.faces[0].box) * 6
    np.testing.assert_allclose(big.faces[0].box, scaled, atol=40)


def test_expression_scores_are_a_distribution(pipeline):
    face = pipeline.analyze(astronaut_jpeg()).faces[0]
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert face.expression == max(face.scores, key=face.scores.get)


def test_a_style_that_frames_the_photo_says_where_the_photo_went(pipeline):
    meme = pipeline.make_meme(astronaut_jpeg(), seed=3, style="poster")
    x1, y1, x2, y2 = meme.photo_box
    assert x1 > 0 and y1 > 0 and x2 < meme.image.width and y2 < meme.image.height
    assert max(meme.image.size) <= 400
    classic = pipeline.make_meme(astronaut_jpeg(), seed=3)
    assert classic.photo_box == (0, 0, *classic.image.size)


def test_the_faces_style_labels_the_detected_face(pipeline):
    blank = pipeline.make_meme(astronaut_jpeg(), top="", bottom="", style="faces")
    photo = pipeline.make_meme(astronaut_jpeg(), top="", bottom="", style="classic")
    changed = np.any(np.asarray(blank.image) != np.asarray(photo.image), axis=2)
    rows, columns = np.nonzero(changed)
    # The astronaut's face is in the upper middle of the picture; her label is just under it.
    x1, _, x2, y2 = np.array(blank.analysis.faces[0].box) * 400 / 512
    side = x2 - x1
    assert rows.min() >= y2 - 5 and rows.max() < y2 + 0.6 * side
    assert columns.min() >= x1 - side and columns.max() <= x2 + side


def test_the_watermark_comes_from_the_settings():
    marked = Pipeline(Settings(output_max_side=400, watermark="MemeGen"))
    plain = Pipeline(Settings(output_max_side=400))
    one = np.asarray(marked.make_meme(astronaut_jpeg(), seed=3).image)
    two = np.asarray(plain.make_meme(astronaut_jpeg(), seed=3).image)
    rows, columns = np.nonzero(np.any(one != two, axis=2))
    assert rows.size, "a mark"
    # In a corner (bottom right unless the caption is there) of the 400 × 400 meme.
    assert rows.max() < 70 or rows.min() > 330
    assert columns.max() < 150 or columns.min() > 250


def reading(**scores: float) -> FaceReading:
    """A face whose unnamed expressions share what the named ones leave, evenly."""
    rest = (1.0 - sum(scores.values())) / (len(LABELS) - len(scores))
    full = {label: scores.get(label, rest) for label in LABELS}
    return FaceReading(
        box=(0, 0, 10, 10), score=0.99, expression=max(full, key=full.get), scores=full
    )


def photo_of(*faces: FaceReading) -> Analysis:
    return Analysis(width=100, height=100, faces=list(faces))


def test_a_confident_face_gets_its_own_expression():
    assert choose_mood(photo_of(reading(sad=0.8, angry=0.1))) == "sad"


def test_a_face_with_no_likely_expression_is_mixed():
    assert choose_mood(photo_of(reading(happy=MIXED_TOP_BELOW - 0.01, neutral=0.1))) == MIXED


def test_a_likely_expression_is_named_even_with_a_close_runner_up():
    assert choose_mood(photo_of(reading(happy=MIXED_TOP_BELOW, surprise=0.44))) == "happy"


def test_only_the_main_face_decides_between_mood_and_mixed():
    unsure = reading(fear=0.3, surprise=0.3)
    assert choose_mood(photo_of(reading(happy=0.9), unsure)) == "happy"
    assert choose_mood(photo_of(unsure, reading(happy=0.9))) == MIXED


def test_three_faces_make_a_group_photo_even_when_the_main_face_is_sure():
    assert choose_mood(photo_of(*[reading(angry=0.9)] * 3)) == GROUP
    assert choose_mood(photo_of(*[reading(angry=0.9)] * 2)) == "angry"


def test_no_face_is_no_face():
    assert choose_mood(photo_of()) == NO_FACE


def test_pick_caption_reports_and_draws_from_the_mixed_mood(pipeline):
    caption, mood = pipeline.pick_caption(photo_of(reading(sad=0.35, neutral=0.3)), seed=4)
    assert mood == MIXED
    assert caption in pipeline.captions.captions(MIXED)


def test_pick_caption_skips_recent_captions_while_others_remain(pipeline):
    photo = photo_of(reading(happy=0.9))
    everything = pipeline.captions.captions("happy")
    recent = everything[:-1]
    for seed in range(5):
        caption, _ = pipeline.pick_caption(photo, seed=seed, recent=recent)
        assert caption == everything[-1]


def test_pick_caption_repeats_rather_than_fails_when_everything_is_recent(pipeline):
    everything = pipeline.captions.captions(GROUP)
    caption, mood = pipeline.pick_caption(photo_of(*[reading()] * 4), seed=1, recent=everything)
    assert mood == GROUP
    assert caption in everything


def test_make_meme_avoids_the_recent_captions(pipeline):
    first = pipeline.make_meme(astronaut_jpeg(), seed=8).caption
    again = pipeline.make_meme(astronaut_jpeg(), seed=8, recent=[first]).caption
    assert again != first

"""Animated uploads: decoded within bounds, captioned on every frame, saved as GIF or WebP."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from memegen.config import Settings
from memegen.imaging import SCAN_FACTOR, ImageTooLarge, encode, load_photo, transcode
from memegen.pipeline import Pipeline

from sample_images import (
    astronaut_jpeg,
    gif_declaring_a_frame_past_pillows_limit,
    gif_with_a_frame_bigger_than_its_screen,
)

DURATIONS = [40, 80, 120, 160]


def animation(
    durations: list[int] = DURATIONS, size: tuple[int, int] = (160, 120), fmt: str = "GIF",
    loop: int | None = 0,
) -> bytes:
    """Frames of the astronaut, each tinted differently so they can be told apart, playing
    for ever (``loop`` as Pillow's writer of ``fmt`` takes it; None writes none)."""
    base = Image.open(io.BytesIO(astronaut_jpeg())).convert("RGB").resize(size)
    frames = []
    for index in range(len(durations)):
        tint = Image.new("RGB", size, ((index * 60) % 256, 80, 255 - (index * 60) % 256))
        frames.append(Image.blend(base, tint, 0.3))
    buffer = io.BytesIO()
    looping = {} if loop is None else {"loop": loop}
    frames[0].save(
        buffer, fmt, save_all=True, append_images=frames[1:], duration=durations, **looping
    )
    return buffer.getvalue()


def frames_of(data: bytes) -> tuple[list[np.ndarray], list[int]]:
    frames, durations = [], []
    with Image.open(io.BytesIO(data)) as image:
        for frame in ImageSequence.Iterator(image):
            frames.append(np.asarray(frame.convert("RGB"), dtype=np.int16))
            durations.append(frame.info.get("duration"))  # WebP says it once a frame is loaded
    return frames, durations


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(Settings(animation_max_frames=10, animation_max_side=200))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_frames_are_read_only_when_asked_for_with_their_timing(fmt: str) -> None:
    data = animation(fmt=fmt)
    assert load_photo(data).animation is None, "a still meme needs no frames"
    photo = load_photo(data, max_frames=10)
    assert photo.animation is not None
    assert len(photo.animation.frames) == 4
    assert list(photo.animation.durations) == DURATIONS
    assert photo.animation.frames[0].shape == (120, 160, 3)


def test_a_still_picture_has_no_animation() -> None:
    assert load_photo(astronaut_jpeg(), max_frames=10).animation is None


def test_a_long_animation_keeps_evenly_spaced_frames_and_its_total_time() -> None:
    durations = [30 + index % 5 * 10 for index in range(37)]
    photo = load_photo(animation(durations), max_frames=10)
    assert photo.animation is not None
    assert len(photo.animation.frames) == 10
    assert sum(photo.animation.durations) == sum(durations)


def test_an_animation_too_long_to_read_is_cut() -> None:
    photo = load_photo(animation([50] * 30), max_frames=5)
    assert photo.animation is not None
    assert len(photo.animation.frames) == 5
    assert sum(photo.animation.durations) == 50 * 5 * SCAN_FACTOR, "the frames read, no more"


def test_a_frame_bigger_than_its_screen_is_held_to_the_pixel_limit_before_decoding() -> None:
    data = gif_with_a_frame_bigger_than_its_screen(2000)
    assert load_photo(data, max_pixels=1_000_000).width == 100, "the still is the first frame"
    with pytest.raises(ImageTooLarge, match="Frame 2 of the animation is 2000×2000"):
        load_photo(data, max_pixels=1_000_000, max_frames=10)


def test_a_frame_declaring_more_than_pillows_limit_is_refused_as_too_large() -> None:
    """Pillow refuses such a frame while seeking it, which used to escape as its own error."""
    data = gif_declaring_a_frame_past_pillows_limit()
    with pytest.raises(ImageTooLarge, match="far too many pixels"):
        load_photo(data, max_frames=10)


def test_frames_are_kept_small() -> None:
    photo = load_photo(animation(size=(900, 600)), max_frames=10, frame_max_side=300)
    assert photo.animation is not None
    assert all(frame.shape == (200, 300, 3) for frame in photo.animation.frames)
    assert photo.pixels.shape == (600, 900, 3), "faces are still read at full working size"


def test_frames_asking_for_no_time_get_the_browser_default() -> None:
    photo = load_photo(animation([0, 10, 100]), max_frames=10)
    assert photo.animation is not None
    assert list(photo.animation.durations) == [100, 100, 100]


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_an_animated_upload_becomes_an_animated_meme_with_the_caption_on_every_frame(
    pipeline: Pipeline, fmt: str
) -> None:
    meme = pipeline.make_meme(animation(), top="every frame", bottom="", animate=True)
    assert len(meme.frames) == 4 and meme.frames[0] is meme.image
    frames, durations = frames_of(meme.encode(fmt))
    assert len(frames) == 4
    assert durations == DURATIONS
    plain = pipeline.make_meme(animation(), top="", bottom="", animate=True)
    for captioned, bare in zip(meme.frames, plain.frames, strict=True):
        top = np.asarray(captioned, dtype=np.int16)[:30]
        assert (np.abs(top - np.asarray(bare, dtype=np.int16)[:30]) > 60).any(axis=2).sum() > 50
    # The frames still differ from one another: the animation was not flattened.
    assert not np.array_equal(frames[0], frames[-1])


def test_animated_memes_are_bounded_in_size(pipeline: Pipeline) -> None:
    meme = pipeline.make_meme(animation(size=(900, 600)), top="big", animate=True)
    assert all(max(frame.size) <= 200 for frame in meme.frames)


def test_an_animations_small_frames_are_not_enlarged(pipeline: Pipeline) -> None:
    meme = pipeline.make_meme(animation(size=(160, 120)), top="small", animate=True)
    assert [frame.size for frame in meme.frames] == [(160, 120)] * len(meme.frames)


def test_without_animate_an_animated_upload_gives_a_still_meme(pipeline: Pipeline) -> None:
    meme = pipeline.make_meme(animation(), top="still", animate=False)
    assert meme.frames == ()
    frames, _ = frames_of(meme.encode("gif"))
    assert len(frames) == 1


def test_the_faces_style_labels_faces_on_every_frame(pipeline: Pipeline) -> None:
    data = animation(size=(480, 360))
    meme = pipeline.make_meme(data, top="", bottom="", style="faces", animate=True)
    plain = pipeline.make_meme(data, top="", bottom="", animate=True)
    assert meme.analysis.faces
    for labelled, bare in zip(meme.frames, plain.frames, strict=True):
        assert not np.array_equal(np.asarray(labelled), np.asarray(bare))


def test_transcoding_keeps_an_animation_where_the_format_can_hold_one() -> None:
    gif = animation()
    frames, durations = frames_of(transcode(gif, "webp"))
    assert len(frames) == 4 and durations == DURATIONS
    with Image.open(io.BytesIO(transcode(gif, "png"))) as still:
        assert getattr(still, "n_frames", 1) == 1


def plays(data: bytes) -> int:
    """How many times an animation plays, 0 for ever: a GIF's loop block counts the
    plays after the first (and without one it plays once), WebP's counts them all."""
    with Image.open(io.BytesIO(data)) as image:
        count = image.info.get("loop")
        if image.format == "GIF":
            return 1 if count is None else 0 if count == 0 else count + 1
        return count


@pytest.mark.parametrize(("source", "loop", "times"), [
    ("GIF", None, 1), ("GIF", 0, 0), ("GIF", 2, 3), ("WEBP", 0, 0), ("WEBP", 1, 1),
    ("WEBP", 3, 3),
])
@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_an_animated_meme_plays_as_many_times_as_its_upload(
    pipeline: Pipeline, source: str, loop: int | None, times: int, fmt: str
) -> None:
    """A GIF that plays once used to come back playing for ever."""
    upload = animation(fmt=source, loop=loop)
    assert plays(upload) == times
    meme = pipeline.make_meme(upload, top="again?", animate=True).encode(fmt)
    assert plays(meme) == times
    assert plays(transcode(meme, "webp" if fmt == "gif" else "gif")) == times


def test_encoding_one_frame_as_gif_is_a_still_gif() -> None:
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    with Image.open(io.BytesIO(encode(image, "gif"))) as gif:
        assert gif.format == "GIF" and gif.size == (40, 30)

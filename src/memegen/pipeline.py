"""The one path every front end takes: bytes → photo → faces → expressions → caption → meme.

The web app, the API and the CLI only call ``Pipeline``; each step is a public
method so that the benchmark can time the stages one by one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from memegen import LABELS
from memegen.captions import Caption, CaptionBank
from memegen.config import Settings
from memegen.expressions import load_classifier
from memegen.faces import Face, default_detector
from memegen.imaging import Photo, encode, load_photo
from memegen.render import render

NO_FACE = "noface"
GROUP = "group"
MIXED = "mixed"

GROUP_MIN_FACES = 3
"""From this many faces a photo is a group photo. Two faces are still a pair whose main
face carries the joke; at three the joke is about the crowd, whatever its largest face shows."""
MIXED_TOP_BELOW = 0.45
"""A main face whose likeliest expression is below this probability gets a ``mixed`` caption:
with seven expressions, under 0.45 means most of the mass is spread over the others, and a
caption that names one feeling would often be wrong. Chosen on faces found in web photos
(experiments/mixed-caption-thresholds): the named captions are right about three times in
five there. A second rule, a mixed caption when the runner-up came within 0.15, cost
more named faces than it made names right, so the top probability alone decides."""


@dataclass(frozen=True)
class FaceReading:
    """One face: its box in the original picture's pixels and what it seems to feel."""

    box: tuple[int, int, int, int]
    score: float
    expression: str
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "box": list(self.box),
            "score": round(self.score, 4),
            "expression": self.expression,
            "scores": {label: round(p, 4) for label, p in self.scores.items()},
        }


@dataclass(frozen=True)
class Analysis:
    width: int
    height: int
    faces: list[FaceReading] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "faces": [face.to_dict() for face in self.faces],
        }


@dataclass(frozen=True)
class Meme:
    """The finished picture, what was read in the photo, and where the photo sits in it.

    ``photo_box`` is ``(x1, y1, x2, y2)`` in the meme's pixels: the whole meme for
    the classic style, less for styles that add a band or a frame, so clients can
    map face boxes onto the meme.
    """

    image: Image.Image
    analysis: Analysis
    caption: Caption
    mood: str
    photo_box: tuple[int, int, int, int]
    frames: tuple[Image.Image, ...] = ()  # an animated meme's frames, ``image`` first
    durations: tuple[int, ...] = ()  # how long each frame shows, in ms
    loop: int | None = 0  # as imaging.repeats gives it

    def encode(self, fmt: str) -> bytes:
        """The meme as ``fmt`` bytes: animated when it is and ``fmt`` can be."""
        return encode(
            self.image, fmt, frames=self.frames, durations=self.durations, loop=self.loop
        )


class Pipeline:
    """Holds the models (loaded once) and runs the stages; safe to share between threads."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.detector = default_detector()
        self.classifier = load_classifier(self.settings.manifest)
        self.captions = CaptionBank.load(self.settings.captions_dir)

    def load(self, data: bytes, *, frames: bool = False) -> Photo:
        """The upload decoded; with ``frames``, an animation's frames too."""
        settings = self.settings
        return load_photo(
            data,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            max_side=settings.decode_max_side,
            min_side=settings.min_side,
            max_frames=settings.animation_max_frames if frames else 0,
            frame_max_side=settings.animation_max_side,
        )

    def detect(self, photo: Photo, *, whole_image: bool = False) -> list[Face]:
        """Every face, largest first; ``whole_image`` treats the picture as one face."""
        if whole_image:
            height, width = photo.pixels.shape[:2]
            return [Face(box=(0.0, 0.0, float(width), float(height)), score=1.0, landmarks=())]
        return self.detector.detect(photo.pixels)

    def classify(
        self, photo: Photo, faces: list[Face], *, precropped: bool = False
    ) -> list[FaceReading]:
        probabilities = self.classifier.classify(
            photo.pixels, [face.box for face in faces], precropped=precropped
        )
        return [
            FaceReading(
                box=_to_original(face.box, photo),
                score=float(face.score),
                expression=LABELS[int(np.argmax(row))],
                scores={label: float(p) for label, p in zip(LABELS, row, strict=True)},
            )
            for face, row in zip(faces, probabilities, strict=True)
        ]

    def analyze(self, data: bytes, *, whole_image: bool = False) -> Analysis:
        photo = self.load(data)
        faces = self.detect(photo, whole_image=whole_image)
        readings = self.classify(photo, faces, precropped=whole_image)
        return Analysis(photo.width, photo.height, readings)

    def pick_caption(
        self,
        analysis: Analysis,
        *,
        top: str | None = None,
        bottom: str | None = None,
        seed: int | None = None,
        recent: Collection[Caption] = (),
    ) -> tuple[Caption, str]:
        """A caption for :func:`choose_mood`'s mood; ``top``/``bottom`` replace its lines.

        Captions in ``recent`` (the ones the user just saw) are skipped while the mood
        has others, so a re-roll shows something new rather than the same joke again.
        """
        mood = choose_mood(analysis)
        picked = self.captions.pick(mood, seed=seed, exclude=recent)
        caption = Caption(
            top=picked.top if top is None else top,
            bottom=picked.bottom if bottom is None else bottom,
        )
        return caption, mood

    def make_meme(
        self,
        data: bytes,
        *,
        top: str | None = None,
        bottom: str | None = None,
        seed: int | None = None,
        style: str = "classic",
        animate: bool = False,
        recent: Collection[Caption] = (),
    ) -> Meme:
        """The meme for the upload ``data``; ``recent`` captions are avoided (see ``pick_caption``).

        With ``animate``, an animated upload gives an animated meme: faces are read
        on the first frame and the same caption is drawn on every frame (a caption
        that jumped from frame to frame would be unreadable).
        """
        photo = self.load(data, frames=animate)
        faces = self.detect(photo)
        readings = self.classify(photo, faces)
        analysis = Analysis(photo.width, photo.height, readings)
        caption, mood = self.pick_caption(
            analysis, top=top, bottom=bottom, seed=seed, recent=recent
        )
        # Boxes in the working pixels handed to the renderer, which scales both.
        marks = [
            (face.box, reading.expression) for face, reading in zip(faces, readings, strict=True)
        ]
        settings = self.settings
        if photo.animation is None:
            rendered = render(
                Image.fromarray(photo.pixels),
                caption,
                style=style,
                max_side=settings.output_max_side,
                faces=marks,
                watermark=settings.watermark,
            )
            return Meme(rendered.image, analysis, caption, mood, rendered.photo_box)
        ratio = photo.animation.frames[0].shape[1] / photo.pixels.shape[1]
        frame_marks = [
            (tuple(value * ratio for value in box), expression) for box, expression in marks
        ]
        drawn = [
            render(
                Image.fromarray(frame),
                caption,
                style=style,
                max_side=min(settings.output_max_side, settings.animation_max_side),
                faces=frame_marks,
                watermark=settings.watermark,
                enlarge_to=0,
            )
            for frame in photo.animation.frames
        ]
        return Meme(
            drawn[0].image,
            analysis,
            caption,
            mood,
            drawn[0].photo_box,
            frames=tuple(frame.image for frame in drawn),
            durations=photo.animation.durations,
            loop=photo.animation.loop,
        )


def choose_mood(analysis: Analysis) -> str:
    """The caption mood for a photo: what the caption should be about.

    In order: no face gives ``noface``; :data:`GROUP_MIN_FACES` or more give ``group``
    (the crowd is the joke, in every style); a main (largest) face the classifier is
    unsure of gives ``mixed`` (see :data:`MIXED_TOP_BELOW`),
    since a confident joke about the wrong feeling falls flatter than a joke about not
    being sure; otherwise the main face's expression.
    """
    if not analysis.faces:
        return NO_FACE
    if len(analysis.faces) >= GROUP_MIN_FACES:
        return GROUP
    main = analysis.faces[0]
    if max(main.scores.values()) < MIXED_TOP_BELOW:
        return MIXED
    return main.expression


def _to_original(box: tuple[float, float, float, float], photo: Photo) -> tuple[int, int, int, int]:
    scale = photo.scale
    x1, y1, x2, y2 = (value / scale for value in box)
    return (
        max(0, round(x1)),
        max(0, round(y1)),
        min(photo.width, round(x2)),
        min(photo.height, round(y2)),
    )

"""The golden-image cases: one meme per style, script, text length and picture shape.

Shared by ``tests/test_golden.py`` (which renders each case and compares it with
its reference PNG in ``tests/golden/``) and ``tools/regenerate_golden.py`` (which
writes those PNGs after a deliberate change of look). Inputs are the bundled
astronaut or pictures drawn here, so a fresh clone has all it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from memegen.captions import Caption
from memegen.render import FaceMark, render_meme

GOLDEN_DIR = Path(__file__).parent / "golden"
DATA = Path(__file__).parent / "data"
MAX_SIDE = 320  # px: small references, still big enough to judge type by eye
# Tolerances: type rasterises a little differently across FreeType, Pillow and CPU
# builds, so the comparison allows small shifts but not a changed layout.
MAX_MEAN_DIFFERENCE = 2.0  # mean absolute difference per channel, of 255
DIFFERENT_PIXEL = 48  # a pixel differs when one channel differs by more than this
MAX_DIFFERENT_FRACTION = 0.01  # of the pixels


@cache
def astronaut() -> Image.Image:
    with Image.open(DATA / "astronaut.jpg") as image:
        return image.convert("RGB")


def scenery(width: int, height: int) -> Image.Image:
    """A made-up photo: sky, hills and a sun, at any size, the same on every run.

    Drawn at most 400 px across and scaled up from there, so a huge picture costs
    a resize rather than hundreds of megabytes of arithmetic.
    """
    small = min(1.0, 400 / max(width, height))
    drawn = _scenery(max(1, round(width * small)), max(1, round(height * small)))
    return drawn if drawn.size == (width, height) else drawn.resize((width, height))


def _scenery(width: int, height: int) -> Image.Image:
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    sky = np.stack([70 + 90 * y + 0 * x, 130 + 80 * y + 0 * x, 230 - 30 * y + 0 * x], axis=2)
    hills = y > 0.62 + 0.08 * np.sin(x * 9)
    sky[hills] = (60, 140, 70)
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    radius = max(2, min(width, height) // 8)
    draw.ellipse((width * 0.7, height * 0.15, width * 0.7 + radius * 2, height * 0.15 + radius * 2),
                 fill=(255, 220, 90))
    return image


def group_photo() -> tuple[Image.Image, list[FaceMark]]:
    """Three drawn faces in a row on a wall, with their boxes and expressions."""
    image = Image.new("RGB", (480, 320), (176, 150, 128))
    draw = ImageDraw.Draw(image)
    faces: list[FaceMark] = []
    for index, (expression, mouth) in enumerate(
        (("happy", "smile"), ("surprise", "o"), ("sad", "frown"))
    ):
        left, top, size = 40 + index * 150, 80, 110
        draw.ellipse((left, top, left + size, top + size), fill=(240, 200, 160), outline="black")
        for eye in (0.32, 0.68):
            cx, cy = left + size * eye, top + size * 0.4
            draw.ellipse((cx - 6, cy - 6, cx + 6, cy + 6), fill="black")
        cx, cy = left + size / 2, top + size * 0.7
        if mouth == "o":
            draw.ellipse((cx - 10, cy - 12, cx + 10, cy + 12), outline="black", width=3)
        else:
            bounds = (cx - 25, cy - 15, cx + 25, cy + 15)
            start, end = (20, 160) if mouth == "smile" else (200, 340)
            draw.arc(bounds if mouth == "smile" else (cx - 25, cy, cx + 25, cy + 30),
                     start, end, fill="black", width=3)
        faces.append(((left, top, left + size, top + size), expression))
    return image, faces


@dataclass(frozen=True)
class Case:
    """One golden image: what it shows, and how to render it."""

    description: str
    picture: Callable[[], Image.Image]
    caption: Caption
    style: str = "classic"
    faces: Callable[[], list[FaceMark]] = field(default=list)
    watermark: str = ""

    def render(self) -> Image.Image:
        return render_meme(
            self.picture(),
            self.caption,
            max_side=MAX_SIDE,
            style=self.style,
            faces=self.faces(),
            watermark=self.watermark,
        )


SETUP = Caption("When the tests pass", "On the first try")
LONG = Caption(
    "When you said it would take five minutes and it is now three hours later and counting",
    "Still refactoring the thing that worked perfectly fine before I touched it",
)

CASES: dict[str, Case] = {
    "classic": Case("Classic style on the astronaut", astronaut, SETUP),
    "modern": Case("Modern: caption band above the photo", astronaut, SETUP, "modern"),
    "poster": Case(
        "Poster: black frame, serif title, line below",
        astronaut,
        Caption("Persistence", "Tests fail until they don't"),
        "poster",
    ),
    "faces": Case(
        "Faces: a word under each face of a group",
        lambda: group_photo()[0],
        Caption("Group chat", "When someone says 'quick call'"),
        "faces",
        faces=lambda: group_photo()[1],
    ),
    "long_text": Case("Long text on both lines, wrapped and shrunk", astronaut, LONG),
    "short_text": Case("One word each: set large", astronaut, Caption("Nope", "Yes")),
    "emoji": Case(
        "Colour emoji among the words",
        astronaut,
        Caption("Deploy on Friday 🚀🔥", "What could go wrong 😂👍🏽"),
    ),
    "scripts": Case(
        "Cyrillic, Greek and Devanagari, upper-cased by each script's rules",
        astronaut,
        Caption("Привет, мир · Καλημέρα", "नमस्ते दुनिया"),
    ),
    "scripts_modern": Case(
        "Cyrillic and Devanagari in the modern band, case kept",
        astronaut,
        Caption("Когда тесты прошли", "और कोई नहीं मानता 😅"),
        "modern",
    ),
    "tiny": Case("A 48×36 picture, enlarged", lambda: scenery(48, 36), SETUP),
    "huge": Case("A 4000×3000 picture, capped", lambda: scenery(4000, 3000), SETUP),
    "portrait": Case("Portrait 240×400", lambda: scenery(240, 400), SETUP),
    "landscape": Case("Wide landscape 400×160", lambda: scenery(400, 160), SETUP),
    "poster_portrait": Case(
        "Poster around a portrait picture",
        lambda: scenery(240, 400),
        Caption("Ambition", "The hills are not going to climb themselves"),
        "poster",
    ),
    "modern_landscape": Case(
        "Modern band over a wide picture",
        lambda: scenery(400, 160),
        LONG,
        "modern",
    ),
    "watermark": Case(
        "Watermark in the corner", astronaut, SETUP, watermark="MemeGen"
    ),
}


def difference(actual: Image.Image, expected: Image.Image) -> tuple[float, float]:
    """Mean absolute difference (of 255) and the fraction of clearly different pixels."""
    a = np.asarray(actual.convert("RGB"), dtype=np.int16)
    b = np.asarray(expected.convert("RGB"), dtype=np.int16)
    delta = np.abs(a - b)
    return float(delta.mean()), float((delta.max(axis=2) > DIFFERENT_PIXEL).mean())

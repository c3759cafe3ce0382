"""Every style, script and picture shape against its reviewed reference image.

A failure writes the new render next to a diff under pytest's temporary
directory and names it; after a deliberate change of look, run
``python tools/regenerate_golden.py`` and review ``tests/golden/index.html``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops

from golden_cases import (
    CASES,
    GOLDEN_DIR,
    MAX_DIFFERENT_FRACTION,
    MAX_MEAN_DIFFERENCE,
    difference,
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_render_matches_its_reference_image(name: str, tmp_path: Path) -> None:
    reference = GOLDEN_DIR / f"{name}.png"
    assert reference.is_file(), f"no {reference}; run tools/regenerate_golden.py"
    actual = CASES[name].render()
    with Image.open(reference) as expected:
        expected = expected.convert("RGB")
    assert actual.size == expected.size, "the layout changed size"
    mean, fraction = difference(actual, expected)
    if mean > MAX_MEAN_DIFFERENCE or fraction > MAX_DIFFERENT_FRACTION:
        actual.save(tmp_path / f"{name}-actual.png")
        ImageChops.difference(actual, expected).save(tmp_path / f"{name}-diff.png")
        pytest.fail(
            f"{name}: mean difference {mean:.2f} (limit {MAX_MEAN_DIFFERENCE}), "
            f"{fraction:.2%} of pixels differ (limit {MAX_DIFFERENT_FRACTION:.0%}); "
            f"see {tmp_path}"
        )


def test_the_comparison_catches_a_moved_caption() -> None:
    case = CASES["classic"]
    image = case.render()
    moved = ImageChops.offset(image, 0, 12)
    mean, fraction = difference(moved, image)
    assert mean > MAX_MEAN_DIFFERENCE or fraction > MAX_DIFFERENT_FRACTION


def test_the_comparison_forgives_a_little_noise() -> None:
    image = CASES["classic"].render()
    rng = np.random.default_rng(1)
    noisy = np.clip(np.asarray(image, dtype=np.int16) + rng.integers(-2, 3, (*image.size[::-1], 3)),
                    0, 255).astype(np.uint8)
    mean, fraction = difference(Image.fromarray(noisy), image)
    assert mean <= MAX_MEAN_DIFFERENCE and fraction <= MAX_DIFFERENT_FRACTION


def test_the_references_stay_small() -> None:
    pngs = list(GOLDEN_DIR.glob("*.png"))
    assert {path.stem for path in pngs} == set(CASES), "a reference without a case, or back"
    assert sum(path.stat().st_size for path in pngs) < 2 * 1024 * 1024
    for path in pngs:
        with Image.open(path) as image:
            assert max(image.size) <= 400

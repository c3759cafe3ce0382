"""``augment``: the low-resolution alteration, mixup, and how augmentation settings persist."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from memegen.cli import main  # noqa: E402
from memegen.errors import UserError  # noqa: E402
from memegen.training import commands  # noqa: E402
from memegen.training.augment import MAX_STRENGTH, AugmentConfig, augment, mix_up  # noqa: E402
from memegen.training.train import TrainConfig  # noqa: E402

ONLY_LOW_RESOLUTION = replace(AugmentConfig().scaled(0.0), flip=0.0, low_resolution=1.0)


def _checkerboard(n: int = 4, side: int = 48) -> torch.Tensor:
    rows = torch.arange(side).view(side, 1)
    cols = torch.arange(side).view(1, side)
    return ((rows + cols) % 2).float().expand(n, 1, side, side).clone()


def test_low_resolution_wipes_out_single_pixel_detail():
    shrunk = augment(_checkerboard(), ONLY_LOW_RESOLUTION, torch.Generator().manual_seed(0))
    assert shrunk.shape == (4, 1, 48, 48)
    assert shrunk.std() < 0.1 < _checkerboard().std()


def test_low_resolution_leaves_flat_faces_flat():
    flat = torch.full((3, 1, 48, 48), 0.4)
    torch.testing.assert_close(augment(flat, ONLY_LOW_RESOLUTION, torch.Generator()), flat)


def test_low_resolution_shrinks_to_the_configured_side_and_back():
    halved = replace(ONLY_LOW_RESOLUTION, low_resolution_side=(0.5, 0.5))
    batch = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(F.interpolate(batch, size=(24, 24), mode="area"),
                             size=(48, 48), mode="bilinear", align_corners=False)
    torch.testing.assert_close(augment(batch, halved, torch.Generator()), expected)


def test_low_resolution_share_picks_some_faces_and_spares_the_rest():
    half = replace(ONLY_LOW_RESOLUTION, low_resolution=0.5)
    batch = _checkerboard(n=200)
    shrunk = augment(batch, half, torch.Generator().manual_seed(2))
    untouched = (shrunk - batch).abs().flatten(1).amax(dim=1) < 1e-4
    assert 70 < int(untouched.sum()) < 130


def test_strength_scales_the_low_resolution_share():
    assert AugmentConfig(low_resolution=0.4).scaled(0.5).low_resolution == pytest.approx(0.2)


def test_config_written_before_low_resolution_existed_loads_with_it_off():
    saved = {"family": "vgg", "augment": {"scale": [0.9, 1.1], "erase_area": [0.02, 0.15]}}
    config = TrainConfig.from_dict(saved)
    assert config.augment.low_resolution == 0.0
    assert config.augment.scale == (0.9, 1.1) and config.augment.erase_area == (0.02, 0.15)


def _faces_valued_by_label(classes: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Face i is flat grey i/10 and labelled class i, so a blend's pixels name its mix."""
    labels = torch.arange(classes)
    faces = (labels.float() / 10).view(classes, 1, 1, 1).expand(classes, 1, 8, 8).clone()
    return faces, labels


@pytest.mark.parametrize("seed", range(5))
def test_mixup_blends_each_face_and_its_target_by_the_same_share(seed: int):
    faces, labels = _faces_valued_by_label()
    mixed, targets = mix_up(faces, labels, 0.4, 7, torch.Generator().manual_seed(seed))
    assert torch.allclose(targets.sum(dim=1), torch.ones(7))
    grey_the_targets_predict = targets @ (torch.arange(7).float() / 10)
    assert torch.allclose(mixed[:, 0, 0, 0], grey_the_targets_predict, atol=1e-6)
    assert (targets[torch.arange(7), labels] >= 0.5).all()  # each face stays mostly itself


def test_mixup_blends_probability_targets_as_they_are():
    faces, labels = _faces_valued_by_label()
    soft = 0.6 * F.one_hot(labels, 7).float() + 0.4 / 7  # each face's votes, 60 % its own
    mixed, targets = mix_up(faces, soft, 0.4, 7, torch.Generator().manual_seed(0))
    greys = torch.arange(7).float() / 10
    assert torch.allclose(targets @ greys, 0.6 * mixed[:, 0, 0, 0] + 0.4 * greys.mean())


@pytest.mark.parametrize("strength", [-1.0, 2.5, 12.0, float("nan")])
def test_a_strength_outside_zero_to_two_is_refused(strength: float):
    with pytest.raises(UserError, match="augmentation strength must be from 0 to 2"):
        AugmentConfig().scaled(strength)


def test_the_strongest_augmentation_never_flattens_inverts_or_flips_a_face():
    strongest = AugmentConfig().scaled(MAX_STRENGTH)
    assert strongest.contrast < 1.0 and strongest.scale[0] > 0.0
    assert commands.MAX_AUGMENT_STRENGTH == MAX_STRENGTH


@pytest.mark.parametrize(("values", "message"), [
    ({"contrast": 1.25}, "contrast change must be at least 0 and below 1"),
    ({"scale": (-0.1, 1.2)}, "zoom must run from above 0"),
    ({"scale": (0.0, 1.2)}, "zoom must run from above 0"),
])
def test_a_config_that_would_invert_or_flip_faces_is_refused(values: dict, message: str):
    with pytest.raises(UserError, match=message):
        AugmentConfig(**values)


@pytest.mark.parametrize("strength", ["-1", "5", "nan"])
def test_fit_refuses_an_augment_strength_outside_its_range_while_parsing(
    tmp_path: Path, capsys, strength: str
):
    with pytest.raises(SystemExit) as stopped:
        main(["train", "fit", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
              "--augment-strength", strength])
    assert stopped.value.code == 2
    assert f"--augment-strength: '{strength}': must be from 0.0 to 2.0" in capsys.readouterr().err

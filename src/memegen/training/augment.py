"""Face-friendly augmentation on whole batches of grey tensors in [0, 1].

Working on the batch with tensor ops keeps the two CPU cores busy with the
network instead of a per-image Python loop. Only changes a face can undergo
in a real photo: mirror, small tilt, zoom and shift, lighting, blur, sensor
noise, an occluding patch, and the loss of detail of a face that was only a
few dozen pixels across in its photo. Never a vertical flip or a large rotation.
``mix_up`` is the one alteration that also changes the targets: it blends pairs of
faces and their labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from memegen.errors import UserError

#: The strongest ``scaled`` goes: twice the design (tilts to 24°, contrast 0.5 to 1.5, zoom
#: 0.8 to 1.24). The contrast's lower end reaches 0 at 4, which flattens faces and past
#: it inverts them; the zoom's reaches 0 at 10, past which faces turn upside down.
MAX_STRENGTH = 2.0


@dataclass(frozen=True)
class AugmentConfig:
    flip: float = 0.5
    max_rotation_deg: float = 12.0
    scale: tuple[float, float] = (0.9, 1.12)
    max_shift: float = 0.08
    brightness: float = 0.2
    contrast: float = 0.25
    blur: float = 0.1
    noise_std: float = 0.03
    erase: float = 0.3
    erase_area: tuple[float, float] = (0.02, 0.15)
    low_resolution: float = 0.0
    low_resolution_side: tuple[float, float] = (0.25, 0.75)

    def __post_init__(self) -> None:
        """Refuse a share no face can be drawn with, and alterations no real photo makes
        (a contrast of 1 or more flattens or inverts a face, a zoom of 0 or less collapses
        it or turns it upside down); they are ``--low-resolution``, ``--augment-strength``
        or a run's config.json, so the user's to fix."""
        if not 0.0 <= self.low_resolution <= 1.0:
            raise UserError(
                f"the low-resolution share must be between 0 and 1, not {self.low_resolution}"
            )
        if not 0.0 <= self.contrast < 1.0:
            raise UserError(
                f"the contrast change must be at least 0 and below 1, not {self.contrast}"
            )
        low, high = self.scale
        if not 0.0 < low <= high:
            raise UserError(f"the zoom must run from above 0 to at least that, not {self.scale}")

    def scaled(self, strength: float) -> AugmentConfig:
        """This config with every alteration scaled by ``strength`` (0: mirror only, 1: as is).

        One number is what a hyper-parameter search can tune; the mirror stays,
        since a mirrored face always keeps its expression. ``strength`` is
        ``--augment-strength``, so one outside 0 to ``MAX_STRENGTH`` is the user's to fix:
        a negative one would turn the alterations inside out, and one too strong makes
        faces no photo holds.
        """
        if not 0.0 <= strength <= MAX_STRENGTH:
            raise UserError(
                f"the augmentation strength must be from 0 to {MAX_STRENGTH:g}, not {strength}"
            )
        low, high = self.scale
        return replace(
            self,
            max_rotation_deg=self.max_rotation_deg * strength,
            scale=(1 - (1 - low) * strength, 1 + (high - 1) * strength),
            max_shift=self.max_shift * strength,
            brightness=self.brightness * strength,
            contrast=self.contrast * strength,
            blur=self.blur * strength,
            noise_std=self.noise_std * strength,
            erase=self.erase * strength,
            low_resolution=self.low_resolution * strength,
        )


def augment(batch: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """A randomly altered copy of ``batch`` (N×1×H×W, values in [0, 1])."""
    n = batch.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-config.max_rotation_deg, config.max_rotation_deg) * math.pi / 180
    scale = uniform(*config.scale)
    mirror = torch.where(torch.rand(n, generator=generator) < config.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * mirror
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * mirror
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = uniform(-config.max_shift, config.max_shift) * 2
    theta[:, 1, 2] = uniform(-config.max_shift, config.max_shift) * 2
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, padding_mode="border", align_corners=False)

    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(1 - config.contrast, 1 + config.contrast).view(n, 1, 1, 1)
    brightness = uniform(-config.brightness, config.brightness).view(n, 1, 1, 1) / 2
    out = (out - mean) * contrast + mean + brightness

    if config.low_resolution > 0:
        out = _shrink_and_restore(out, config, generator)
    if config.blur > 0:
        blurred = F.avg_pool2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        chosen = (torch.rand(n, generator=generator) < config.blur).view(n, 1, 1, 1)
        out = torch.where(chosen, blurred, out)
    if config.noise_std > 0:
        out = out + torch.randn(out.shape, generator=generator) * config.noise_std
    if config.erase > 0:
        out = _random_erase(out, config, generator)
    return out.clamp_(0.0, 1.0)


def mix_up(
    batch: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    classes: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch blended with a shuffled copy of itself, and the targets blended alike.

    One share ``lam`` from Beta(alpha, alpha) for the whole batch, taken as the larger
    of ``lam`` and ``1 - lam`` so each face stays mostly itself. A network that has
    to say "70 % happy, 30 % sad" for a blend cannot be surer than the faces allow,
    which is meant to make its probabilities more honest for the vote. ``targets``
    are class indices or rows of probabilities; the result is always probabilities.
    """
    if alpha <= 0:
        raise ValueError(f"the mixup alpha must be above 0, not {alpha}")
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)
    partner = torch.randperm(batch.shape[0], generator=generator)
    if targets.dim() == 1:
        targets = F.one_hot(targets, classes).float()
    return (
        lam * batch + (1 - lam) * batch[partner],
        lam * targets + (1 - lam) * targets[partner],
    )


def _random_erase(batch: torch.Tensor, config: AugmentConfig, generator: torch.Generator):
    n, _, height, width = batch.shape
    chosen = torch.rand(n, generator=generator) < config.erase
    area = torch.rand(n, generator=generator) * (config.erase_area[1] - config.erase_area[0])
    area = area + config.erase_area[0]
    aspect = torch.exp(torch.rand(n, generator=generator) * 2 * math.log(2) - math.log(2))
    patch_h = (torch.sqrt(area * aspect) * height).clamp(1, height - 1).long()
    patch_w = (torch.sqrt(area / aspect) * width).clamp(1, width - 1).long()
    top = (torch.rand(n, generator=generator) * (height - patch_h)).long()
    left = (torch.rand(n, generator=generator) * (width - patch_w)).long()
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    mask = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + patch_h).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + patch_w).view(n, 1, 1))
        & chosen.view(n, 1, 1)
    ).unsqueeze(1)
    fill = torch.rand(n, 1, 1, 1, generator=generator).expand_as(batch)
    return torch.where(mask, fill, batch)


def _shrink_and_restore(batch: torch.Tensor, config: AugmentConfig, generator: torch.Generator):
    """Shrink a share of the faces to a fraction of their side and scale them back up.

    Faces in group photos are often only a few dozen pixels across, and the
    crop scales those under the input side up with bilinear interpolation,
    where FER2013's crops are mostly sharp. Shrinking by area averaging and
    restoring bilinearly is what those small faces went through, so a model
    trained this way has seen blurred eyes and mouths of the kind they have.
    Nothing is drawn from ``generator`` unless the alteration is on, so older
    configs replay the same random stream.
    """
    n, _, height, width = batch.shape
    chosen = torch.rand(n, generator=generator) < config.low_resolution
    low, high = config.low_resolution_side
    fractions = torch.rand(n, generator=generator) * (high - low) + low
    sides = (fractions * height).round().clamp(2, height).long()
    out = batch.clone()
    for side in torch.unique(sides[chosen]).tolist():
        rows = chosen & (sides == side)
        small = F.interpolate(batch[rows], size=(side, max(2, round(side * width / height))),
                              mode="area")
        out[rows] = F.interpolate(small, size=(height, width), mode="bilinear",
                                  align_corners=False)
    return out

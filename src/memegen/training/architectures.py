"""CPU-sized CNN families for 48×48 grey faces, with width and depth as parameters.

``vgg``: stacks of 3×3 convolutions, the strongest per FLOP on FER-sized inputs.
``separable``: depthwise-separable residual blocks in the spirit of mini-Xception,
the smallest files. ``resnet``: basic residual blocks, steady to train deep.

Every family ends in one of two ``HEADS``. ``pool`` averages the last feature
map to one vector, so the classifier cannot tell where on the face a feature
was; ``grid`` pools it to 3×3 and reads that grid with a small dense layer, so
a mouth feature below and a brow feature above stay apart. On a 48 px face the
grid costs a fraction of a percent of the convolutions' work.
"""

from __future__ import annotations

import torch
from torch import nn

FAMILIES = ("vgg", "separable", "resnet")
HEADS = ("pool", "grid")
GRID_SIDE = 3


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _head(channels: int, classes: int, dropout: float, head: str = "pool") -> nn.Sequential:
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
    side = GRID_SIDE if head == "grid" else 1
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(side), nn.Flatten(), nn.Dropout(dropout)]
    if head == "grid":
        layers += [
            nn.Linear(channels * side**2, channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        ]
    return nn.Sequential(*layers, nn.Linear(channels, classes))


def vgg(
    classes: int, width: int = 32, depth: int = 2, dropout: float = 0.3, head: str = "pool"
) -> nn.Module:
    """Four stages of ``depth`` 3×3 convolutions, channels doubling, 2×2 max-pool between."""
    layers: list[nn.Module] = []
    channels_in = 1
    for stage in range(4):
        channels_out = width * 2 ** min(stage, 3)
        for _ in range(depth):
            layers.append(_conv_bn(channels_in, channels_out))
            channels_in = channels_out
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, _head(channels_in, classes, dropout, head))


class _SeparableBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                nn.Conv2d(channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            channels = out_channels
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


def separable(
    classes: int, width: int = 32, depth: int = 2, dropout: float = 0.3, head: str = "pool"
) -> nn.Module:
    """A plain 3×3 stem, then four residual depthwise-separable blocks that halve the size."""
    stem = nn.Sequential(_conv_bn(1, width // 2), _conv_bn(width // 2, width // 2))
    blocks = []
    channels_in = width // 2
    for stage in range(4):
        channels_out = width * 2**stage
        blocks.append(_SeparableBlock(channels_in, channels_out, depth))
        channels_in = channels_out
    return nn.Sequential(stem, *blocks, _head(channels_in, classes, dropout, head))


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(in_channels, out_channels, stride),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def resnet(
    classes: int, width: int = 32, depth: int = 1, dropout: float = 0.3, head: str = "pool"
) -> nn.Module:
    """A 3×3 stem, then four stages of ``depth`` basic blocks; stages 2–4 halve the size."""
    layers: list[nn.Module] = [_conv_bn(1, width)]
    channels_in = width
    for stage in range(4):
        channels_out = width * 2**stage
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_BasicBlock(channels_in, channels_out, stride))
            channels_in = channels_out
    return nn.Sequential(*layers, _head(channels_in, classes, dropout, head))


def last_layer(network: nn.Sequential) -> nn.Linear:
    """The linear layer every family's head ends in, which ``pooled_features`` feed."""
    return network[-1][-1]


def pooled_features(network: nn.Sequential, faces: torch.Tensor) -> torch.Tensor:
    """What the last layer reads: the network run up to it (``memegen train photo-models``
    refits that layer alone for faces found in photos)."""
    return network[-1][:-1](network[:-1](faces))


def build(
    family: str, classes: int, width: int, depth: int, dropout: float, head: str = "pool"
) -> nn.Module:
    """The network of ``family`` (one of ``FAMILIES``) ending in ``head`` (one of ``HEADS``)."""
    builders = {"vgg": vgg, "separable": separable, "resnet": resnet}
    if family not in builders:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    return builders[family](classes, width=width, depth=depth, dropout=dropout, head=head)
